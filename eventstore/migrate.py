"""Versioned SQL migrations: ``eventstore/migrations/NNNN_name.sql``, applied in order, each in
its own transaction, recorded with a checksum in ``schema_migrations``.

Several processes (workers, the CLI, test sessions) may start at once against one database, so
the whole run holds a session advisory lock: the second process waits, then finds nothing left
to apply.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from eventstore.errors import MigrationError

# Fixed key of the advisory lock (advisory locks are per database, so migrations of different
# databases never wait for each other). Arbitrary, but must never change.
MIGRATION_LOCK_KEY = 0x5EBA_7A00_0001

# Beside this module (shipped as package data, see pyproject.toml).
MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``name`` is the file name without ``.sql``."""

    name: str
    sql: str
    checksum: str


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files in order (the package's own unless ``directory`` is given)."""
    directory = directory or MIGRATIONS_DIR
    files = [(path.name, path.read_bytes()) for path in directory.glob("*.sql")]
    migrations: list[Migration] = []
    numbers: dict[str, str] = {}
    for file_name, content in sorted(files):
        match = _NAME.match(file_name)
        if match is None:
            raise MigrationError(f"migration file {file_name!r} is not named NNNN_name.sql")
        number = match.group(1)
        if number in numbers:
            raise MigrationError(f"migrations {numbers[number]} and {file_name} share "
                                 f"number {number}")
        numbers[number] = file_name
        migrations.append(Migration(
            name=file_name.removesuffix(".sql"),
            sql=content.decode("utf-8"),
            checksum=hashlib.sha256(content).hexdigest(),
        ))
    return migrations


async def migrate(dsn: str, *, directory: Path | None = None) -> list[str]:
    """Apply pending migrations to the database at ``dsn``; return the names applied now
    (empty when it was up to date)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn, load_migrations(directory))
    finally:
        await conn.close()


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply ``migrations`` on an open connection (see :func:`migrate`)."""
    # Session-level rather than per transaction: the lock must cover reading what is applied
    # as well as applying the rest, across several transactions.
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_BOOTSTRAP)
        applied = {
            row["name"]: row["checksum"]
            for row in await conn.fetch("SELECT name, checksum FROM schema_migrations")
        }
        # Check every applied file before applying anything: an edited migration means this
        # database and this code disagree about the schema, and guessing would be worse.
        for migration in migrations:
            recorded = applied.get(migration.name)
            if recorded is not None and recorded != migration.checksum:
                raise MigrationError(
                    f"migration {migration.name} was changed after it was applied "
                    f"(recorded checksum {recorded[:12]}…, file {migration.checksum[:12]}…); "
                    "add a new migration instead of editing an applied one"
                )
        done: list[str] = []
        for migration in migrations:
            if migration.name in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                    migration.name,
                    migration.checksum,
                )
            done.append(migration.name)
        return done
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
