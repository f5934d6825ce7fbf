"""The cohort roster in Postgres: who takes part, their matching profiles, their contacts.

``register_cohort`` is the one place names and e-mails are written (to ``participants``);
everything downstream (workflows, events, matching) sees employee ids and profiles only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from domain.people import MatchProfile, Person, Role, to_profiles
from domain.program import ProgramSpec


class RosterConflict(Exception):
    """The cohort id is taken by a different program or roster."""


def people_digest(profiles: Sequence[MatchProfile]) -> str:
    rows = sorted((p.model_dump(mode="json") for p in profiles), key=lambda r: r["employee_id"])
    canonical = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def register_cohort(
    pool: asyncpg.Pool, cohort_id: str, program: ProgramSpec, people: Sequence[Person]
) -> str:
    """Store the roster once (idempotent for the same inputs); returns the people digest."""
    profiles = to_profiles(people)
    digest = people_digest(profiles)
    program_json = program.model_dump_json()
    async with pool.acquire() as conn, conn.transaction():
        existing = await conn.fetchrow(
            "SELECT people_digest, program FROM cohorts WHERE cohort_id = $1 FOR UPDATE",
            cohort_id,
        )
        if existing is not None:
            same_program = json.loads(existing["program"]) == json.loads(program_json)
            if existing["people_digest"] != digest or not same_program:
                raise RosterConflict(
                    f"cohort {cohort_id!r} already exists with a different program or people "
                    "file; choose another cohort id"
                )
            return digest
        await conn.execute(
            "INSERT INTO cohorts (cohort_id, program, people_digest) VALUES ($1, $2::jsonb, $3)",
            cohort_id, program_json, digest,
        )
        # Contacts: keep an erased person erased even if an old HR export names them again.
        await conn.executemany(
            """
            INSERT INTO participants (employee_id, name, email, timezone, notify_via)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (employee_id) DO UPDATE
               SET name = EXCLUDED.name, email = EXCLUDED.email,
                   timezone = EXCLUDED.timezone, notify_via = EXCLUDED.notify_via,
                   updated_at = now()
             WHERE participants.erased_at IS NULL
            """,
            [(p.employee_id, p.name, p.email, p.timezone,
              p.notify_via.value if p.notify_via else None) for p in people],
        )
        await conn.executemany(
            """
            INSERT INTO cohort_members (cohort_id, employee_id, role, department, hire_date,
                                        profile)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            """,
            [(cohort_id, p.employee_id, p.role.value, p.department, p.hire_date,
              p.model_dump_json()) for p in profiles],
        )
    return digest


async def load_program(conn: asyncpg.Connection | asyncpg.Pool, cohort_id: str) -> ProgramSpec:
    raw = await conn.fetchval("SELECT program FROM cohorts WHERE cohort_id = $1", cohort_id)
    if raw is None:
        raise LookupError(f"no cohort {cohort_id!r}")
    return ProgramSpec.model_validate_json(raw)


async def load_profiles(
    conn: asyncpg.Connection | asyncpg.Pool, cohort_id: str, *, role: Role | None = None
) -> list[MatchProfile]:
    query = "SELECT profile FROM cohort_members WHERE cohort_id = $1"
    args: list[Any] = [cohort_id]
    if role is not None:
        query += " AND role = $2"
        args.append(role.value)
    rows = await conn.fetch(query + " ORDER BY employee_id", *args)
    return [MatchProfile.model_validate_json(r["profile"]) for r in rows]


async def member_roles(conn: asyncpg.Connection | asyncpg.Pool, cohort_id: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT employee_id, role FROM cohort_members WHERE cohort_id = $1", cohort_id
    )
    return {r["employee_id"]: r["role"] for r in rows}
