"""``sebaya cohort``: check a program's input files and preview its matching (a dry run).

Other commands that act on a running cohort are added to this same Typer app elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # imported in the commands: `sebaya --help` must not load them
    from domain.matching import MatchResult
    from domain.people import Person
    from domain.program import ProgramSpec
    from intake import Problem

app = typer.Typer(
    no_args_is_help=True,
    help="Validate, match, start and watch program cohorts.",
    pretty_exceptions_show_locals=False,
)

ProgramArg = Annotated[Path, typer.Argument(help="program.yaml", show_default=False)]
PeopleArg = Annotated[Path, typer.Argument(help="people.csv (HR export)", show_default=False)]


def _load(program_path: Path, people_path: Path) -> tuple[ProgramSpec, list[Person]]:
    """Both files checked in one go; on any problem print them all and exit 1."""
    from intake import check_people, check_program

    program, problems = check_program(program_path)
    # People are still checked when the program is broken (without the questionnaire), so one
    # run shows everything that needs fixing.
    people, people_problems = check_people(people_path, program)
    problems = problems + people_problems
    if problems or program is None:
        _print_problems(problems)
        if program is None:
            typer.echo(
                f"note: answers in {people_path} were not checked against the questionnaire "
                f"because {program_path} has problems."
            )
        raise typer.Exit(code=1)
    return program, people


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        typer.echo(str(problem))
    n = len(problems)
    typer.echo(f"{n} problem{'s' if n != 1 else ''} found.")


@app.command("validate")
def validate(program_path: ProgramArg, people_path: PeopleArg) -> None:
    """Check program.yaml and people.csv; list every problem with file, line and column."""
    from domain.people import Role

    program, people = _load(program_path, people_path)
    mentors = [p for p in people if p.role is Role.MENTOR]
    mentees = [p for p in people if p.role is Role.MENTEE]
    window = program.start_date - timedelta(days=program.matching.recent_hire_days)
    recent = sum(1 for p in mentees if p.hire_date >= window)
    departments = Counter(p.department for p in people)
    typer.echo(f"{program_path}: OK — {program.name!r}")
    typer.echo(
        f"  objective {program.objective.kind.value} (judged by {program.objective.metric}), "
        f"starts {program.start_date.isoformat()}, "
        f"{len(program.questionnaire.questions)} questions, approval {program.approval.value}"
    )
    typer.echo(
        f"{people_path}: OK — {len(people)} people: {len(mentors)} mentors "
        f"({sum(p.capacity for p in mentors)} places), {len(mentees)} mentees "
        f"({recent} hired within {program.matching.recent_hire_days} days of the start), "
        f"{len(departments)} departments"
    )


@app.command("match")
def match_command(
    program_path: ProgramArg,
    people_path: PeopleArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (pairs, unmatched, ...).")
    ] = False,
    today: Annotated[
        str | None,
        typer.Option(help="Date the match is run (YYYY-MM-DD); default: today."),
    ] = None,
    with_candidates: Annotated[
        bool,
        typer.Option(
            "--candidates/--no-candidates",
            help="Include every eligible pair in the JSON (millions for very large cohorts).",
        ),
    ] = True,
) -> None:
    """Dry run: propose the best pairs and explain who stays unmatched. Nothing is stored."""
    from domain.matching import match
    from domain.people import to_profiles

    try:
        run_date = date.fromisoformat(today) if today else date.today()
    except ValueError:
        raise typer.BadParameter(
            f"expected YYYY-MM-DD, got {today!r}", param_hint="--today"
        ) from None
    program, people = _load(program_path, people_path)
    result = match(program, to_profiles(people), today=run_date)
    if as_json:
        doc = result.to_json(include_candidates=with_candidates)
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    _print_table(program, people, result)


def _print_table(program: ProgramSpec, people: list[Person], result: MatchResult) -> None:
    from rich.console import Console
    from rich.table import Table

    # Names are fine here: this is the coordinator's terminal, not workflow history.
    names = {p.employee_id: p for p in people}
    console = Console()
    table = Table(title=f"{program.name} — proposed pairs ({program.matching.objective.value})")
    for column in ("Mentor", "Mentee", "Score", "Why"):
        table.add_column(column, justify="right" if column == "Score" else "left")
    for pair in result.pairs:
        mentor, mentee, e = names[pair.mentor], names[pair.mentee], pair.explanation
        why = [
            f"questionnaire {e.questionnaire.value:.2f}",
            f"skills {e.skills.value:.2f}"
            + (f" ({', '.join(e.skills_covered)})" if e.skills_covered else ""),
        ]
        if e.cross_functional.value:
            why.append(f"{mentor.department} → {mentee.department}")
        if e.recent_hire.value:
            why.append(f"recent hire ({e.mentee_days_since_hire} days in)")
        table.add_row(
            f"{mentor.name} ({pair.mentor}, L{mentor.level})",
            f"{mentee.name} ({pair.mentee}, L{mentee.level})",
            f"{pair.score:.3f}",
            "; ".join(why),
        )
    console.print(table)
    if result.unmatched:
        left = Table(title="Unmatched")
        left.add_column("Who")
        left.add_column("Role")
        left.add_column("Reason")
        for u in result.unmatched:
            left.add_row(f"{names[u.employee_id].name} ({u.employee_id})", u.role.value, u.reason)
        console.print(left)
    console.print(
        f"{len(result.pairs)} pairs, total score {result.total_score:.3f}, "
        f"{len(result.candidates)} eligible pairs considered; "
        f"{result.algorithm_version}, input {result.input_digest[:12]}"
    )


# --- commands that act on the running system ---------------------------------------------


def _run(main: Any) -> Any:
    """Run ``main(infra)`` on the composition root's infrastructure; a configuration problem
    (no services to connect to) exits 2 with the reason instead of a traceback."""
    from sebaya.bootstrap import open_infrastructure
    from sebaya.runtime import ServicesNotConfigured

    async def go() -> Any:
        async with open_infrastructure() as infra:
            return await main(infra)

    try:
        return asyncio.run(go())
    except ServicesNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


@app.command("start")
def start(
    program_path: ProgramArg,
    people_path: PeopleArg,
    cohort_id: Annotated[
        str | None, typer.Option("--cohort-id", help="Default: from the program name.")
    ] = None,
    started_by: Annotated[str, typer.Option("--by", help="Who starts it (ops name).")] = "ops",
) -> None:
    """Validate the inputs, record the roster and start the cohort's workflow."""
    from rich.console import Console

    from domain.people import Role

    program, people = _load(program_path, people_path)

    async def go(infra: Any) -> str:
        from sebaya.operations import start_cohort

        handle = await start_cohort(infra.pool, infra.temporal, program=program, people=people,
                                    task_queue=infra.services.task_queue, cohort_id=cohort_id,
                                    started_by=started_by)
        return handle.id.removeprefix("cohort-")

    try:
        started = _run(go)
    except typer.Exit:
        raise
    except Exception as exc:  # a clear message beats a traceback for ops
        typer.echo(f"error: could not start the cohort: {exc}", err=True)
        raise typer.Exit(code=1) from None
    Console().print(
        f"[bold green]started[/] cohort [bold]{started}[/] "
        f"({sum(p.role is Role.MENTOR for p in people)} mentors, "
        f"{sum(p.role is Role.MENTEE for p in people)} mentees; approval: "
        f"{program.approval.value})\n"
        f"  watch it:   sebaya cohort status {started}\n"
        + (f"  approve it: sebaya cohort approve {started} --by NAME\n"
           if program.approval.value == "manual" else "")
    )


@app.command("approve")
def approve_command(
    cohort_id: Annotated[str, typer.Argument(help="Cohort id")],
    approved_by: Annotated[str, typer.Option("--by", help="Your name (recorded).")],
    drop: Annotated[
        list[str] | None, typer.Option(help="MENTOR:MENTEE pair to drop (repeatable).")
    ] = None,
    swap: Annotated[
        list[str] | None,
        typer.Option(help="Swap the mentors of two pairs: M1:E1,M2:E2 (repeatable)."),
    ] = None,
) -> None:
    """Approve the proposed pairs, after dropping or swapping some."""
    from domain.cohort import ApproveProposal
    from sebaya.operations import approve, parse_pair

    try:
        drops = tuple(parse_pair(d) for d in drop or [])
        swaps = []
        for s in swap or []:
            a, _, b = s.partition(",")
            swaps.append((parse_pair(a), parse_pair(b)))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def go(infra: Any) -> int:
        return await approve(infra.temporal, cohort_id, ApproveProposal(
            approved_by=approved_by, drop=drops, swap=tuple(swaps)))

    try:
        n = _run(go)
    except typer.Exit:
        raise
    except Exception as exc:
        typer.echo(f"error: {_cause(exc)}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"approved: {n} pairing(s) will start on the program's start date")


@app.command("participant-left")
def participant_left_command(
    cohort_id: Annotated[str, typer.Argument(help="Cohort id")],
    employee_id: Annotated[str, typer.Argument(help="Who left the company")],
    left_on: Annotated[str, typer.Option("--date", help="Last day (YYYY-MM-DD)")],
    recorded_by: Annotated[str, typer.Option("--by", help="Who records it")] = "hr",
) -> None:
    """Record that a participant left the company; their pairing ends (counted in retention)."""
    from sebaya.operations import participant_left

    try:
        day = date.fromisoformat(left_on)
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {left_on!r}",
                                 param_hint="--date") from None

    async def go(infra: Any) -> list[str]:
        return await participant_left(infra.temporal, cohort_id, employee_id, day, recorded_by)

    try:
        ended = _run(go)
    except typer.Exit:
        raise
    except Exception as exc:
        typer.echo(f"error: {_cause(exc)}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"recorded: {employee_id} left on {day}; pairings ended: "
               f"{', '.join(ended) or 'none'}")


def _cause(exc: BaseException) -> str:
    """The domain's own words for a refused update, not the transport's."""
    cause = getattr(exc, "cause", None)
    return str(cause) if cause is not None else str(exc)


async def _catch_up(infra: Any) -> None:
    """One catch-up of the read models (cheap when the projector is current)."""
    from eventstore import EventStore
    from projections.projector import Projector

    await Projector(EventStore(infra.pool, infra.registry)).catch_up()


@app.command("status")
def status_command(
    cohort_id: Annotated[str, typer.Argument(help="Cohort id")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counts by phase, pairings at risk, the waiting pool and what is due next."""
    from rich.console import Console
    from rich.table import Table

    from projections.queries import cohort_status


    async def go(infra: Any) -> Any:
        await _catch_up(infra)
        return await cohort_status(infra.pool, cohort_id)

    try:
        status = _run(go)
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if status is None:
        typer.echo(f"error: no cohort {cohort_id!r} in the read models", err=True)
        raise typer.Exit(code=1)
    if as_json:
        typer.echo(status.model_dump_json(indent=2))
        return
    console = Console()
    console.print(f"[bold]{status.program_name or cohort_id}[/] ({cohort_id}) — "
                  f"{status.phase}; {status.pairings_total} pairings, "
                  f"{status.rematches} rematches")
    phases = Table("phase", "pairings", title="By phase")
    for phase, n in sorted(status.by_phase.items()):
        phases.add_row(phase, str(n))
    console.print(phases)
    if status.at_risk:
        risk = Table("pairing", "mentor", "mentee", "why", title="At risk")
        for r in status.at_risk:
            risk.add_row(r.pairing_id, r.mentor_id, r.mentee_id, ", ".join(r.reasons))
        console.print(risk)
    if status.waiting:
        pool_table = Table("employee", "role", "after", "available", title="Waiting pool")
        for w in status.waiting:
            pool_table.add_row(w.employee_id, w.role, w.after_pairing or "",
                               f"{w.available_at:%Y-%m-%d}" if w.available_at else "")
        console.print(pool_table)
    if status.next_due:
        due = Table("due", "what", "pairing", title="Next due")
        for d in status.next_due[:15]:
            due.add_row(f"{d.due_at:%Y-%m-%d %H:%M}", d.what, d.pairing_id)
        console.print(due)


@app.command("report")
def report_command(
    cohort_id: Annotated[str, typer.Argument(help="Cohort id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    as_csv: Annotated[bool, typer.Option("--csv")] = False,
    as_html: Annotated[bool, typer.Option("--html")] = False,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Judge as of this date (default: latest).")
    ] = None,
) -> None:
    """The evaluation: goals, meetings, satisfaction, exits, retention against the baseline."""
    from sebaya.report import render
    from sebaya.report_service import cohort_report

    if sum((as_json, as_csv, as_html)) > 1:
        raise typer.BadParameter("choose one of --json, --csv, --html")
    fmt = "json" if as_json else "csv" if as_csv else "html" if as_html else "text"
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {as_of!r}",
                                 param_hint="--as-of") from None

    async def go(infra: Any) -> Any:
        await _catch_up(infra)
        return await cohort_report(infra.pool, cohort_id, as_of=day)

    try:
        report = _run(go)
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(render(report, fmt))  # type: ignore[arg-type]


@app.command("sync")
def sync_command(
    cohort_id: Annotated[str, typer.Argument(help="Cohort id")],
    source: Annotated[str, typer.Argument(
        help="people.csv (HR export, same format as at the start), or an http(s) URL",
        show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Record the difference (default: only show it).")] = False,
    synced_by: Annotated[str, typer.Option("--by", help="Who syncs (recorded).")] = "hr-sync",
    every: Annotated[str | None, typer.Option(
        "--every", help="Run this sync on a Temporal schedule: 1d (daily), 12h, 30m; "
        "'off' removes the schedule. Implies --apply.")] = None,
) -> None:
    """Compare a fresh HR export with the cohort's roster: joiners, leavers, changed fields;
    with --apply record it (joiners matched, leavers' pairings ended, broken pairs flagged)."""
    import tempfile

    from intake import IntakeError
    from sebaya.operations import sync_roster
    from sebaya.roster_feed import fetch_export, parse_every

    if every is not None:
        _schedule(cohort_id, source, synced_by, every, parse_every)
        return

    async def go(infra: Any) -> Any:
        with tempfile.TemporaryDirectory(prefix="sebaya-roster-") as tmp:
            path = await asyncio.to_thread(fetch_export, source, Path(tmp))
            return await sync_roster(infra.pool, infra.temporal, cohort_id, path,
                                     synced_by=synced_by, apply=apply, source=source)

    try:
        plan, result = _run(go)
    except IntakeError as exc:
        _print_problems(list(exc.problems))
        typer.echo("nothing was recorded.")
        raise typer.Exit(code=1) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a refused sync, an unreachable URL, an unknown cohort
        typer.echo(f"error: {_cause(exc)}", err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        doc = {"plan": plan.model_dump(mode="json"),
               "applied": None if result is None else result.model_dump(mode="json")}
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        raise typer.Exit(code=1 if plan.diff.problems else 0)
    from rich.console import Console

    diff = plan.diff
    console = Console()
    console.print(f"[bold]{cohort_id}[/] vs {plan.source} (sha256 {plan.source_digest[:12]}): "
                  f"{diff.summary()}")
    for joiner in diff.joiners:
        console.print(f"  + {joiner.employee_id} joins as {joiner.role.value} "
                      f"({joiner.department}, level {joiner.level})")
    for leaver in diff.leavers:
        console.print(f"  - {leaver} is no longer in the export (left)")
    for member in diff.changed:
        for change in member.changes:
            console.print(f"  ~ {member.employee_id} {change.field}: {change.before!r} -> "
                          f"{change.after!r}", markup=False)
    for employee_id in diff.departed_but_listed:
        console.print(f"  · {employee_id} is recorded as having left but is still in the "
                      "export (ignored)", markup=False)
    for problem in diff.problems:
        console.print(f"  ! {problem}", markup=False)
    if diff.problems:
        typer.echo("nothing was recorded: fix the export (or record these by hand) first.")
        raise typer.Exit(code=1)
    if result is None:
        typer.echo("nothing to record." if diff.is_empty else
                   f"dry run: record it with  sebaya cohort sync {cohort_id} {source} --apply")
        return
    typer.echo(f"recorded: {len(result.joined)} joined, {len(result.left)} left "
               f"({len(result.ended)} pairing(s) ended), {len(result.changed)} changed")
    for flag in result.flagged:
        typer.echo(f"  flagged {flag.pairing_id}: {flag.reason} — coordinators told, the pair "
                   "was offered a no-fault exit")
    for pair in result.proposed:
        typer.echo(f"  joiner pair {pair.mentor} -> {pair.mentee} (score {pair.score:.3f})")
    if result.awaiting_approval:
        typer.echo(f"  the joiners' pairs await approval: sebaya cohort approve {cohort_id} "
                   "--by NAME")


def _schedule(cohort_id: str, source: str, synced_by: str, every: str, parse: Any) -> None:
    from sebaya.roster_feed import schedule_roster_sync, unschedule_roster_sync

    if every.strip().lower() == "off":
        async def off(infra: Any) -> bool:
            return await unschedule_roster_sync(infra.temporal, cohort_id)

        removed = _run(off)
        typer.echo(f"roster sync schedule of {cohort_id} "
                   f"{'removed' if removed else 'did not exist'}")
        return
    try:
        period = parse(every)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--every") from None
    if not source.startswith(("http://", "https://")):
        source = str(Path(source).resolve())  # the worker reads it, maybe elsewhere

    async def go(infra: Any) -> str:
        return await schedule_roster_sync(infra.temporal, cohort_id=cohort_id, source=source,
                                          synced_by=synced_by, every=period,
                                          task_queue=infra.services.task_queue)

    schedule_id = _run(go)
    typer.echo(f"scheduled {schedule_id}: sync {cohort_id} from {source} every {period}; "
               "results in the cohort's history (sebaya cohort status / audit history)")


@app.command("roster")
def roster_command(
    cohort_id: Annotated[str, typer.Argument(help="Cohort id")],
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="YYYY-MM-DD (end of that day, program time) or an ISO timestamp; "
        "default: as it stands.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The cohort's roster as of a date, replayed from its stream (roster syncs rolled back)."""
    from datetime import datetime, time

    from adapters.roster import load_program
    from eventstore import EventStore
    from sebaya.operations import roster_as_of

    async def go(infra: Any) -> Any:
        moment: datetime | None = None  # as it stands
        if as_of:
            zone = (await load_program(infra.pool, cohort_id)).ground_rules.zone
            try:
                moment = (datetime.combine(date.fromisoformat(as_of), time.max, tzinfo=zone)
                          if len(as_of) == 10 else datetime.fromisoformat(as_of))
            except ValueError:
                raise typer.BadParameter(f"expected YYYY-MM-DD or an ISO timestamp, got "
                                         f"{as_of!r}", param_hint="--as-of") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
        return await roster_as_of(infra.pool, EventStore(infra.pool, infra.registry),
                                  cohort_id, moment)

    try:
        roster = _run(go)
    except (LookupError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(roster.model_dump_json(indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("employee", "role", "department", "level", "manager", "capacity", "left",
                  title=f"{cohort_id} as of {roster.as_of:%Y-%m-%d %H:%M %Z} "
                        f"(digest {roster.digest[:12]})")
    left = set(roster.left)
    for p in roster.members:
        table.add_row(p.employee_id, p.role.value, p.department, str(p.level),
                      p.manager_id or "", str(p.capacity) if p.capacity else "",
                      "yes" if p.employee_id in left else "")
    Console().print(table)
