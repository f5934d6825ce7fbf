"""``sebaya demo`` (``make demo``): a whole sample cohort on the embedded stack, in virtual
time, ending with the cohort report, the commands to inspect what happened and the way into
the web app."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # imported when the demo runs: `sebaya --help` must not load them
    from rich.console import Console

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def demo(
    program: Annotated[Path, typer.Option(help="program.yaml")] = EXAMPLES / "program.yaml",
    people: Annotated[Path, typer.Option(help="people.csv")] = EXAMPLES / "people.csv",
    seed: Annotated[
        int, typer.Option(help="Seed of the simulated participants: the same seed replays "
                               "the same program, event for event.")
    ] = 7,
    cohort_id: Annotated[
        str | None, typer.Option("--cohort-id", help="Default: from the program name, "
                                                     "with a random suffix.")
    ] = None,
    week3: Annotated[Path | None, typer.Option(
        help="The HR export applied in week 3 (new hires join the running cohort); default: "
        "examples/people-week3.csv with the example people.csv, none otherwise.")] = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="COHORT_ID",
        help="Continue the simulation of a cohort this stack already runs (after a crash "
        "or Ctrl-C), from where its workflows are; give the same --seed.")] = None,
) -> None:
    from rich.console import Console

    from sebaya.operations import COHORT_ID

    if cohort_id is not None and not COHORT_ID.match(cohort_id):
        raise typer.BadParameter("use 1-40 letters, digits, '-' or '_' (no dots)",
                                 param_hint="--cohort-id")
    if resume is not None:
        if cohort_id is not None:
            raise typer.BadParameter("--resume names the cohort; leave out --cohort-id",
                                     param_hint="--resume")
        if not COHORT_ID.match(resume):
            raise typer.BadParameter("use 1-40 letters, digits, '-' or '_' (no dots)",
                                     param_hint="--resume")
    if week3 is None and people == EXAMPLES / "people.csv":
        week3 = EXAMPLES / "people-week3.csv"
    console = Console()
    asyncio.run(_demo(console, program, people, seed, resume or cohort_id, week3,
                      resume=resume is not None))


async def _demo(console: Console, program_path: Path, people_path: Path, seed: int,
                cohort_id: str | None, week3: Path | None, *, resume: bool = False) -> None:
    from intake import load_people, load_program
    from sebaya.bootstrap import open_infrastructure
    from sebaya.devstack import DevStack
    from sebaya.logging import configure_logging
    from sebaya.settings import get_settings

    configure_logging("json", "WARNING")
    began = time.monotonic()
    settings = get_settings()
    program = load_program(program_path)
    roster = load_people(people_path, program)
    console.rule("[bold]Sebaya demo")
    console.print(f"program: [bold]{program.name}[/] — {program.objective.description}")
    if not settings.uses_external_services:
        console.print("starting the embedded stack (PostgreSQL + Temporal dev server)…")
        DevStack(settings, report=lambda line: console.print(f"  {line}")).up(worker=True)
    async with open_infrastructure(settings) as infra:
        await _simulate(console, infra, program, roster, seed, cohort_id, week3, began,
                        resume=resume)


async def _simulate(console: Console, infra: Any, program: Any, roster: Any, seed: int,
                    cohort_id: str | None, week3: Path | None, began: float, *,
                    resume: bool = False) -> None:
    from temporalio.testing import TimeSkipper, TimeSkippingConfig

    from domain.ids import cohort_stream
    from sebaya.bootstrap import build_worker_activities
    from sebaya.operations import new_cohort_id, start_cohort
    from sebaya.simulation import CohortSimulation
    from worker import build_worker

    settings, services, pool = infra.settings, infra.services, infra.pool
    # Workflows started through this client get time skipping configured (off until the
    # simulation fast-forwards each one); nothing else about them is simulated.
    skipper = TimeSkipper(infra.temporal, config=TimeSkippingConfig(enabled=False))
    # The stack's worker process runs the workflows; a second worker in this process would
    # only compete with the simulator for the same cores. With external services (no stack
    # worker) the demo brings its own.
    own_worker = settings.uses_external_services
    worker = build_worker(
        skipper.client, settings,
        build_worker_activities(pool, infra.registry, settings, client=skipper.client),
    ) if own_worker else None
    async with worker if worker is not None else contextlib.nullcontext():
        cohort_id = cohort_id or new_cohort_id(program)
        exists = await pool.fetchval("SELECT 1 FROM streams WHERE stream_id = $1",
                                     cohort_stream(cohort_id))
        if resume and not exists:
            console.print(f"[bold red]error:[/] no cohort {cohort_id!r} on this stack to "
                          f"resume (`sebaya cohort status` lists what runs)")
            raise typer.Exit(code=1)
        if exists and not resume:
            console.print(f"[bold red]error:[/] cohort {cohort_id!r} already ran on this "
                          f"stack: choose another --cohort-id (the same --seed replays the "
                          f"same program under any id), or continue it with --resume")
            raise typer.Exit(code=1)
        if resume:
            console.print(f"resuming cohort [bold]{cohort_id}[/] with seed {seed}…")
        else:
            await start_cohort(pool, skipper.client, program=program, people=roster,
                               task_queue=services.task_queue, cohort_id=cohort_id,
                               started_by="demo")
            console.print(f"cohort [bold]{cohort_id}[/], seed {seed}: {len(roster)} people; "
                          f"simulating {program.ground_rules.program_length_days} days in "
                          f"virtual time (interrupted? `sebaya demo --resume {cohort_id} "
                          f"--seed {seed}`)…")
        sim = CohortSimulation(skipper.client, skipper, cohort_id, seed=seed, pool=pool,
                               say=lambda line: console.print(f"  {line}"),
                               week3_export=week3)
        result = await sim.run()
        console.print(
            f"cohort finished: {result.launched} pairings ({result.completed} completed, "
            f"{result.exited} exited, {result.rematched} rematched); "
            f"{sim.log.updates_sent} participant actions")
        await _report(console, infra, cohort_id)
        example = await pool.fetchval(
            "SELECT stream_id FROM streams WHERE stream_id LIKE $1 ORDER BY stream_id "
            "LIMIT 1", f"pairing-{cohort_id}.%")
        pairing = (example or "pairing-?").removeprefix("pairing-")
        console.rule("Inspect it yourself")
        console.print(
            f"  sebaya cohort status {cohort_id}\n"
            f"  sebaya cohort roster {cohort_id} --as-of {program.start_date}\n"
            f"  sebaya cohort report {cohort_id} --html > report.html\n"
            f"  sebaya audit history {pairing}\n"
            f"  sebaya audit replay {pairing}\n"
            f"  sebaya audit verify --cohort {cohort_id}\n"
            f"  sebaya audit export {cohort_id} --out bundle && "
            f"sebaya audit verify-bundle bundle\n"
            f"  sebaya dev mail   (the e-mails and calendar invites that went out)\n"
            f"  Temporal Web UI: sebaya dev status")
        await _mail_summary(console, settings)
        await _web_access(console, pool, settings, example)
        console.print(
            f"[dim]finished in {time.monotonic() - began:.0f} s; the same seed replays "
            f"the same program (`sebaya demo --seed {seed}`, any --cohort-id)[/]")


async def _report(console: Console, infra: Any, cohort_id: str) -> None:
    """The cohort report from the read models, once the projector has caught up."""
    from eventstore import EventStore
    from projections.projector import Projector
    from sebaya.report import render
    from sebaya.report_service import cohort_report

    await Projector(EventStore(infra.pool, infra.registry)).settle()
    report = await cohort_report(infra.pool, cohort_id)
    console.rule("Cohort report")
    console.print(render(report, "text"), markup=False, highlight=False)


async def _mail_summary(console: Console, settings: Any) -> None:
    """How many e-mails and calendar invites reached the stack's mail catcher."""
    from delivery.catcher import read_messages
    from sebaya.devstack import DevStack

    if settings.uses_external_services:
        return
    caught = await asyncio.to_thread(read_messages, DevStack(settings).mail_dir)
    invites = sum(1 for m in caught if any("calendar" in a or a.endswith(".ics")
                                           for a in m.attachments))
    console.print(f"  mail: {len(caught)} e-mails in the dev catcher, {invites} with a "
                  f"calendar invite or update")


async def _web_access(console: Console, pool: Any, settings: Any, stream: str | None) -> None:
    """Where to click through the finished cohort: the web address, a sign-in link for one
    sample participant (valid 15 minutes) and a coordinator token."""
    from sebaya.devstack import read_stack_record
    from web import auth
    from web.settings import WebSettings

    web = WebSettings()
    record = None if settings.uses_external_services else read_stack_record(settings.state_dir)
    secret_file = settings.state_dir / "web-secret"
    if record is not None and record.web is not None and secret_file.exists():
        url, secret = record.web.url, secret_file.read_text().strip()
    elif web.secret_configured:
        url, secret = web.public_url, web.secret_key
    else:
        console.print("[dim]web: not running here (start it with `sebaya serve`)[/]")
        return
    mentee = await pool.fetchval(
        "SELECT payload->>'mentee_id' FROM events WHERE stream_id = $1 AND version = 1",
        stream) if stream else None
    console.rule("Click through it")
    console.print(f"  web: {url}")
    if mentee:
        token = await auth.MagicLinks(pool, secret, web.magic_link_minutes).issue(mentee)
        # soft_wrap: a link broken over two lines cannot be clicked or pasted.
        console.print(f"  sign in as participant {mentee} (valid {web.magic_link_minutes} "
                      f"minutes, once): {auth.sign_in_url(url, token)}", soft_wrap=True)
    _, coordinator = await auth.create_api_token(pool, "coordinator", "demo")
    console.print(f"  coordinator token (sign in at {url}/staff/sign-in): {coordinator}",
                  soft_wrap=True)
