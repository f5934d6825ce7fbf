"""``sebaya audit``: answer an auditor's questions from the record (see ``docs/audit.md``).

Exit codes: 0 the record checks out, 1 a finding (tampering, a difference, nondeterminism),
2 the request itself failed (unknown pairing, unreachable service, bad option).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import typer
from pydantic import BaseModel, ValidationError

from sebaya.cli.errors import fail as _fail
from sebaya.settings import get_settings

if TYPE_CHECKING:  # the store and the service stack load when a command runs
    from eventstore import EventStore
    from sebaya.runtime import Services

app = typer.Typer(
    no_args_is_help=True,
    help="Replay and verify the domain record.",
    pretty_exceptions_show_locals=False,
)

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
RoleOption = Annotated[
    str | None,
    typer.Option("--role", envvar="SEBAYA_AUDIT_ROLE",
                 help="Database role to act as (e.g. sebaya_auditor: read-only, no personal "
                      "data). Your login must be a member of it."),
]


def _services() -> Services:
    from sebaya.runtime import Services, ServicesNotConfigured, resolve_services

    try:
        return resolve_services()
    except ServicesNotConfigured:
        # The store alone answers most audit questions: without Temporal, still go on.
        settings = get_settings()
        if settings.database_url is None:
            raise
        return Services(database_url=settings.database_url, temporal_address="",
                        namespace=settings.temporal_namespace, task_queue=settings.task_queue)


def _with_role(dsn: str, role: str | None) -> str:
    """The DSN with ``role`` as a startup setting: every pooled connection then acts as the
    role for its whole life (``RESET ALL`` keeps startup settings)."""
    if not role:
        return dsn
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "role"] + [("role", role)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@asynccontextmanager
async def _store(role: str | None = None) -> AsyncIterator[tuple[EventStore, Services]]:
    from eventstore import EventStore
    from sebaya.bootstrap import build_registry
    from sebaya.runtime import connect_pool

    services = _services()
    services = dataclasses.replace(services,
                                   database_url=_with_role(services.database_url, role))
    pool = await connect_pool(services, min_size=1, max_size=4)
    try:
        yield EventStore(pool, build_registry()), services
    finally:
        await pool.close()


def _run(main: Callable[[], Awaitable[T]]) -> T:
    import asyncpg

    from eventstore import EventStoreError
    from sebaya.runtime import ServicesNotConfigured

    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except ServicesNotConfigured as exc:
        raise _fail(str(exc)) from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise _fail(f"database: {exc}") from None
    except (ValidationError, EventStoreError) as exc:
        # A stored row that no longer parses as an event: the record itself is damaged.
        raise _fail(f"the record cannot be read as events ({exc}); run `sebaya audit verify` "
                    "to see which stream and version were altered", code=1) from None


def _print_json(model: BaseModel | Any) -> None:
    if isinstance(model, BaseModel):
        typer.echo(model.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(model, indent=2, default=str))


def _conclude(report: Any, as_json: bool, heading: str, *, ok: str) -> None:
    """The end of a checking command: the report (JSON, or a heading, one ``BROKEN`` line a
    finding and the verdict), then exit 1 if anything was found."""
    if as_json:
        typer.echo(json.dumps({**report.model_dump(mode="json"), "ok": report.ok}, indent=2))
    else:
        typer.echo(heading)
        for finding in report.findings:
            typer.echo(f"  BROKEN {finding}")
        typer.echo(f"OK: {ok}" if report.ok else f"{len(report.findings)} problem(s)")
    if not report.ok:
        raise typer.Exit(code=1)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected an ISO date or timestamp, got {value!r}",
                                 param_hint="--as-of") from None
    if moment.tzinfo is None:
        # A bare date or time means UTC: say so rather than guess the reader's zone.
        moment = moment.replace(tzinfo=UTC)
    if len(value) == 10:  # a date: the end of that day
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
    return moment


# --- history ---------------------------------------------------------------------------------


@app.command("history")
def history(
    pairing: Annotated[str, typer.Argument(help="Pairing id (<cohort>.<mentee>.<mentor>.<n>)")],
    as_json: JsonOption = False,
    role: RoleOption = None,
) -> None:
    """What happened to a pairing, in order, who did it, and why the pair was matched."""
    from audit.history import PairingNotFound, pairing_history

    async def main() -> Any:
        async with _store(role) as (store, _):
            return await pairing_history(store, pairing)

    try:
        result = _run(main)
    except PairingNotFound as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(result)
        return
    typer.echo(f"pairing {result.pairing_id} (cohort {result.cohort_id}): mentor "
               f"{result.mentor_id}, mentee {result.mentee_id}; {len(result.timeline)} "
               f"event(s), stream {result.stream_id}")
    match = result.match
    if match is not None:
        typer.echo(f"matched {_when(match.matched_at)} by {match.matched_by}, score "
                   f"{match.score:.3f}" + (f", rematch of {match.rematch_of}"
                                           if match.rematch_of else ""))
        if match.explanation:
            typer.echo(f"  explanation: {json.dumps(match.explanation, sort_keys=True)}")
        if match.run_id:
            typer.echo(f"  match run {match.run_id} ({match.run_kind}), algorithm "
                       f"{match.algorithm_version}, input digest {match.input_digest}, "
                       f"recorded {_when(match.run_recorded_at)}"
                       + (f", approved by {match.approved_by} {_when(match.approved_at)}"
                          if match.approved_by else ""))
        else:
            typer.echo("  no recorded match run names this pair")
        for note in match.adjustments:
            typer.echo(f"  proposal adjustment: {note}")
    typer.echo("")
    typer.echo(f"{'v':>4}  {'occurred (UTC)':19}  {'type':24}  {'actor':22}  summary")
    for entry in result.timeline:
        typer.echo(f"{entry.version:>4}  {_when(entry.occurred_at)}  {entry.type:24}  "
                   f"{entry.actor:22}  {entry.summary}")


# --- replay ----------------------------------------------------------------------------------


@app.command("replay")
def replay(
    pairing: Annotated[str, typer.Argument(help="Pairing id")],
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Fold only what happened by then (ISO date or timestamp; UTC unless "
                        "it has an offset). Without it, also compare with the read model and "
                        "the running workflow.")] = None,
    recorded: Annotated[bool, typer.Option(
        "--recorded", help="With --as-of: by recorded time (what the record said then) "
                           "instead of domain time (what had happened by then).")] = False,
    workflow: Annotated[bool, typer.Option(
        "--workflow/--no-workflow", help="Compare with the running workflow's state.")] = True,
    as_json: JsonOption = False,
    role: RoleOption = None,
) -> None:
    """Rebuild a pairing's state from its events (optionally as of a date) and compare it."""
    from audit.history import PairingNotFound
    from audit.replay import replay_pairing
    from sebaya.runtime import connect_temporal

    moment = _parse_time(as_of) if as_of else None
    basis: Literal["domain", "recorded"] = "recorded" if recorded else "domain"
    warnings: list[str] = []

    async def main() -> Any:
        async with _store(role) as (store, services):
            client = None
            if workflow and moment is None and services.temporal_address:
                try:
                    client = await connect_temporal(services)
                except Exception as exc:  # unreachable server: the store still answers
                    warnings.append(f"Temporal at {services.temporal_address} unreachable "
                                    f"({exc}); not compared with the workflow")
            return await replay_pairing(store, pairing, as_of=moment, basis=basis,
                                        client=client)

    try:
        result = _run(main)
    except PairingNotFound as exc:
        raise _fail(str(exc)) from None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        _print_json(result)
    else:
        s = result.state
        when = f" as of {_when(moment)} ({basis} time)" if moment else ""
        typer.echo(f"pairing {pairing}{when}: {result.events_applied} event(s) folded, "
                   f"up to version {result.last_version}")
        if result.skipped_versions:
            typer.echo(f"  note: versions {result.skipped_versions} happened later in domain "
                       "time than later versions and are left out")
        typer.echo(f"  phase {s.phase.value}; goals set by "
                   f"{', '.join(sorted(side.value for side in s.goals)) or 'nobody'}; "
                   f"meetings held {s.meetings_held}, missed {s.meetings_missed} "
                   f"({s.consecutive_missed} in a row), {s.minutes_met} min")
        if s.next_meeting is not None:
            typer.echo(f"  next meeting {s.next_meeting.meeting_no} at "
                       f"{_when(s.next_meeting.scheduled_at)}")
        if s.escalations:
            typer.echo(f"  escalated {s.escalations}x")
        if s.exit is not None:
            typer.echo(f"  exited {_when(s.exit.exited_at)} by {s.exit.initiated_by.value}: "
                       f"{s.exit.reason.value} during {s.exit.phase_at_exit}")
        if s.completed_at is not None:
            typer.echo(f"  completed {_when(s.completed_at)}")
        for comparison in result.comparisons:
            label = comparison.source.replace("_", " ")
            if not comparison.available:
                typer.echo(f"  {label}: not compared ({comparison.note})")
                continue
            if comparison.note:
                typer.echo(f"  {label}: {comparison.note}")
            if not comparison.differences:
                typer.echo(f"  {label}: identical")
            for diff in comparison.differences:
                typer.echo(f"  {label} differs in {diff.field}: replayed {diff.replayed!r}, "
                           f"{label} {diff.other!r}")
    if not result.consistent:
        raise typer.Exit(code=1)


# --- verify ----------------------------------------------------------------------------------


@app.command("verify")
def verify(
    stream: Annotated[str | None, typer.Option("--stream", help="One stream id.")] = None,
    cohort: Annotated[str | None, typer.Option(
        "--cohort", help="A cohort: its stream and every pairing stream of it.")] = None,
    all_streams: Annotated[bool, typer.Option("--all", help="Every stream.")] = False,
    against: Annotated[Path | None, typer.Option(
        "--against", help="An anchor file (sebaya audit anchor): also report every stream "
                          "whose history no longer extends its anchored head. Implies --all "
                          "unless a scope is given.")] = None,
    as_json: JsonOption = False,
    role: RoleOption = None,
) -> None:
    """Check hash chains, versions, heads and global order; exit 1 naming each break."""
    from audit.anchor import AnchorError, check_against_anchor, load_anchor
    from audit.verify import verify as verify_record
    from domain.ids import cohort_stream, pairing_stream

    chosen = sum((stream is not None, cohort is not None, all_streams))
    if chosen > 1 or (chosen == 0 and against is None):
        raise typer.BadParameter("give exactly one of --stream, --cohort, --all")
    anchor = None
    if against is not None:
        try:
            anchor = (*load_anchor(against), against.name)
        except AnchorError as exc:
            raise _fail(str(exc)) from None

    async def main() -> Any:
        async with _store(role) as (store, _):
            result = await verify_record(store, stream=stream, cohort=cohort)
            check = None
            if anchor is not None:
                document, digest, name = anchor
                scope = None if result.scope == "all" else set(result.streams)
                if cohort is not None and scope is not None:
                    # Also the cohort's anchored streams that no longer exist at all.
                    own, prefix = cohort_stream(cohort), pairing_stream(f"{cohort}.")
                    scope |= {h.stream_id for h in document.streams
                              if h.stream_id == own or h.stream_id.startswith(prefix)}
                check = await check_against_anchor(store, document, name, digest,
                                                   streams=None if scope is None
                                                   else sorted(scope))
            return result, check

    result, check = _run(main)
    findings = result.findings + (check.findings if check else [])
    broken = sorted({f.stream_id for f in findings if f.stream_id})
    ok = not findings
    if as_json:
        document = {**result.model_dump(mode="json"), "findings": [
            f.model_dump(mode="json") for f in findings], "ok": ok, "broken_streams": broken}
        if check is not None:
            document["anchor"] = check.model_dump(mode="json", exclude={"findings"})
        typer.echo(json.dumps(document, indent=2))
    else:
        subject = {"stream": f"stream {stream}", "cohort": f"cohort {cohort}",
                   "all": "every stream"}[result.scope]
        typer.echo(f"{subject}: {result.streams_checked} stream(s), {result.events_checked} "
                   f"event(s) checked")
        if check is not None:
            typer.echo(f"against anchor {check.anchor} (#{check.sequence}, "
                       f"{_when(check.created_at)}, sha256 {check.anchor_sha256[:16]}…): "
                       f"{check.streams_compared} anchored stream(s) compared")
        for finding in findings:
            typer.echo(f"  BROKEN {finding}")
        if ok:
            typer.echo("OK: every chain verifies" + (
                " and extends its anchored head" if check is not None else ""))
        else:
            typer.echo(f"{len(findings)} problem(s) in {len(broken)} stream(s)")
    if not ok:
        raise typer.Exit(code=1)


# --- anchors ---------------------------------------------------------------------------------

AnchorDirOption = Annotated[Path | None, typer.Option(
    "--dir", help="Anchor location (default SEBAYA_ANCHOR_DIR, else <state_dir>/anchors).")]


@app.command("anchor")
def anchor(
    directory: AnchorDirOption = None,
    as_json: JsonOption = False,
    role: RoleOption = None,
) -> None:
    """Write every stream's chain head and their Merkle root outside the database."""
    from audit.anchor import AnchorError, sink_for, write_anchor

    sink = sink_for(directory or get_settings().anchor_location)

    async def main() -> Any:
        async with _store(role) as (store, _):
            return await write_anchor(store, sink)

    try:
        written = _run(main)
    except AnchorError as exc:
        raise _fail(str(exc)) from None
    except PermissionError as exc:
        raise _fail(f"cannot write to {sink.describe()}: {exc.strerror}") from None
    if as_json:
        typer.echo(json.dumps({**written.model_dump(mode="json"), "ok": written.written},
                              indent=2))
    elif written.written:
        typer.echo(f"anchored {written.stream_count} stream(s) as #{written.sequence} in "
                   f"{written.location}")
        typer.echo(f"  merkle root {written.merkle_root}")
        typer.echo(f"  anchor sha256 {written.sha256}"
                   + (f" (previous {written.previous.name})" if written.previous else ""))
    else:
        typer.echo(f"NOT anchored: the record no longer extends "
                   f"{written.previous.name if written.previous else 'a verified state'}")
        for finding in written.findings:
            typer.echo(f"  BROKEN {finding}")
    if not written.written:
        raise typer.Exit(code=1)


anchors_app = typer.Typer(no_args_is_help=True, help="The chain of anchors itself.")
app.add_typer(anchors_app, name="anchors")


@anchors_app.command("verify")
def anchors_verify(
    directory: AnchorDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check every anchor's Merkle root and the chain of anchors; exit 1 on any finding."""
    from audit.anchor import AnchorError, sink_for, verify_anchor_chain

    sink = sink_for(directory or get_settings().anchor_location)
    try:
        report = verify_anchor_chain(sink)
    except AnchorError as exc:
        raise _fail(str(exc)) from None
    if report.anchors_checked == 0:
        raise _fail(f"no anchor in {report.location}")
    _conclude(report, as_json,
              f"{report.location}: {report.anchors_checked} anchor(s) checked; latest "
              f"{report.latest} sha256 {report.latest_sha256}",
              ok="every anchor and link verifies")


# --- export / verify-bundle ------------------------------------------------------------------


@app.command("export")
def export(
    subject: Annotated[str, typer.Argument(help="A pairing id or a cohort id.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the bundle into.")],
    kind: Annotated[str | None, typer.Option(
        "--kind", help="pairing or cohort (default: whichever exists).")] = None,
    as_json: JsonOption = False,
    role: RoleOption = None,
) -> None:
    """Write a self-contained bundle (events.jsonl + manifest.json) checkable offline."""
    from audit.bundle import SubjectNotFound, export_bundle

    if kind not in (None, "pairing", "cohort"):
        raise typer.BadParameter("pairing or cohort", param_hint="--kind")

    async def main() -> Any:
        async with _store(role) as (store, _):
            return await export_bundle(store, subject, out, kind=kind)  # type: ignore[arg-type]

    try:
        manifest = _run(main)
    except SubjectNotFound as exc:
        raise _fail(str(exc)) from None
    if as_json:
        _print_json(manifest)
        return
    typer.echo(f"exported {manifest.subject['kind']} {subject}: {manifest.event_count} "
               f"event(s) in {len(manifest.streams)} stream(s) to {out}")
    typer.echo(f"  events.jsonl sha256 {manifest.events_sha256}")
    typer.echo("  keep this digest (or the manifest) somewhere the database's administrators "
               "cannot write: it anchors the bundle")


@app.command("verify-bundle")
def verify_bundle(
    path: Annotated[Path, typer.Argument(help="The bundle directory.")],
    as_json: JsonOption = False,
) -> None:
    """Check an exported bundle offline, with no database: exit 1 on any finding."""
    from audit.bundle import verify_bundle as check

    report = check(path)
    subject = report.subject or {}
    _conclude(report, as_json,
              f"bundle {path} ({subject.get('kind', '?')} {subject.get('id', '?')}, "
              f"exported {_when(report.created_at)}): {report.streams_checked} "
              f"stream(s), {report.events_checked} event(s) checked",
              ok="the bundle is intact")


# --- determinism -----------------------------------------------------------------------------


@app.command("determinism")
def determinism(
    cohort: Annotated[str | None, typer.Option(
        "--cohort", help="Only this cohort's pairings.")] = None,
    workflow_id: Annotated[str | None, typer.Option(
        "--workflow-id", help="Only this workflow (its latest run).")] = None,
    running_only: Annotated[bool, typer.Option(
        "--running-only", help="Only running workflows (the ones a deploy would break).")]
    = False,
    as_json: JsonOption = False,
) -> None:
    """Replay recorded Temporal histories against this code; exit 1 on nondeterminism."""
    from audit.determinism import check_determinism
    from sebaya.runtime import connect_temporal

    async def main() -> Any:
        services = _services()
        if not services.temporal_address:
            raise _fail("Temporal is not configured (TEMPORAL_ADDRESS)")
        client = await connect_temporal(services)
        return await check_determinism(client, cohort_id=cohort, workflow_id=workflow_id,
                                       running_only=running_only)

    report = _run(main)
    if as_json:
        typer.echo(json.dumps({**report.model_dump(mode="json"), "ok": report.ok}, indent=2))
    else:
        typer.echo(f"replayed {report.checked} workflow run(s) against this code"
                   + (f" ({report.query})" if report.query else ""))
        for verdict in report.failures:
            kind = "NONDETERMINISTIC" if verdict.nondeterministic else "FAILED"
            typer.echo(f"  {kind} {verdict.workflow_id} run {verdict.run_id}: {verdict.error}")
        typer.echo("OK: every history replays" if report.ok else
                   f"{len(report.failures)} run(s) would break with this code")
    if not report.ok:
        raise typer.Exit(code=1)


# --- erasure ---------------------------------------------------------------------------------


@app.command("erase")
def erase(
    employee: Annotated[str, typer.Argument(help="Employee id whose name and e-mail to erase.")],
    yes: Annotated[bool, typer.Option("--yes", help="Really erase (cannot be undone).")] = False,
    as_json: JsonOption = False,
) -> None:
    """GDPR erasure: blank a person's name and e-mail; events and hashes stay untouched."""
    from audit.erasure import erase_person

    if not yes:
        raise _fail(f"this permanently erases the name and e-mail of {employee}; repeat with "
                    "--yes to do it")

    async def main() -> Any:
        async with _store() as (store, _):
            return await erase_person(store.pool, employee)

    result = _run(main)
    if as_json:
        _print_json(result)
    elif not result.found:
        typer.echo(f"{employee} is not in participants: nothing to erase")
    else:
        typer.echo(f"{employee}: name and e-mail erased"
                   + (" (already erased before)" if result.already_erased else "")
                   + f" at {_when(result.erased_at)}; the event record is unchanged")
    if not result.found:
        raise typer.Exit(code=2)
