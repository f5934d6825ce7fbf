"""``cohort sync``: a fresh HR export reaches a running cohort, on the real dev server and real
Postgres, through the same operations function the CLI uses (files on disk, not objects)."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from domain import commands as c
from domain import events as e
from domain.cohort import CohortState
from domain.ids import cohort_stream, pairing_stream, pairing_workflow_id
from domain.people import Person, Role
from domain.program import Approval, ProgramSpec
from examples.generate_people import write_csv
from intake import IntakeError, load_program
from projections.projector import Projector
from sebaya.operations import plan_roster_sync, roster_as_of, sync_roster
from sebaya.report_service import cohort_report
from tests.projections.views import past_horizon
from tests.workflows.harness import (
    advance_to,
    maybe_record_history,
    running_worker,
    started_state,
    store_for,
)
from tests.workflows.test_cohort import EXAMPLES, start_cohort, wait_for
from workflows.cohort import CohortWorkflow
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal


def _answers(program: ProgramSpec) -> dict[str, frozenset[str]]:
    return {q.id: frozenset({q.options[0]}) for q in program.questionnaire.questions}


def member(program: ProgramSpec, eid: str, role: Role, level: int, dept: str, hired: date,
           **extra: Any) -> Person:
    fields: dict[str, Any] = dict(
        employee_id=eid, name=f"Orang {eid}", email=f"{eid.lower()}@example.co.id", role=role,
        level=level, department=dept, hire_date=hired, timezone="Asia/Jakarta",
        capacity=1 if role is Role.MENTOR else 0, answers=_answers(program))
    fields.update(extra)
    return Person(**fields)


def roster(program: ProgramSpec) -> list[Person]:
    """Three mentors (M1 takes two mentees), two mentees: one place stays free."""
    return [
        member(program, "M1", Role.MENTOR, 4, "Engineering", date(2018, 1, 1), capacity=2),
        member(program, "M2", Role.MENTOR, 4, "Finance", date(2019, 1, 1)),
        member(program, "E1", Role.MENTEE, 3, "Sales", date(2026, 10, 1),
               do_not_pair_with=frozenset({"M2"})),
        member(program, "E2", Role.MENTEE, 3, "HR", date(2026, 9, 1),
               do_not_pair_with=frozenset({"M2"})),
    ]


def write(path: Path, people: list[Person], program: ProgramSpec) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        write_csv(people, program, fh)
    return path


async def stream_types(pool: asyncpg.Pool, stream: str) -> list[str]:
    return [r.type for r in await store_for(pool).read_stream(stream)]


async def test_week_three_export_joins_leaves_flags_and_is_idempotent(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.AUTO})
    people = roster(program)
    env = temporal_env
    store = store_for(db_pool)
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people)
        cohort_id = handle.id.removeprefix("cohort-")
        state = await wait_for(handle, lambda s: s.phase.value == "scheduled", "approved")
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        state = await wait_for(handle, lambda s: s.launched == 2, "launched")
        # Both initial mentees avoid M2 (do-not-pair): M1 takes both, M2's place stays free.
        assert {(a.mentor_id, a.mentee_id) for a in state.active.values()} == {
            ("M1", "E1"), ("M1", "E2")}
        e1_pairing = next(k for k, a in state.active.items() if a.mentee_id == "E1")
        e2_pairing = next(k for k, a in state.active.items() if a.mentee_id == "E2")
        for pid in (e1_pairing, e2_pairing):
            pairing = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                         pairing_workflow_id(pid))
            await advance_to(env, pairing, state.starts_at + timedelta(days=21))
            await started_state(pairing)
        await advance_to(env, handle, state.starts_at + timedelta(days=21))
        before_sync = state.starts_at + timedelta(days=20)  # the cohort's (virtual) time
        digest_at_start = (await store.read_stream(cohort_stream(cohort_id)))[0].payload[
            "people_digest"]

        # Week 3: E2 left; E1's manager is now M1, their own mentor; M1 asks for fewer
        # mentees; a mentor (M3) and two mentees join. E3 must not get M2 (do-not-pair) nor
        # M3 (their manager); E4 may get either free place.
        week3 = [
            member(program, "M1", Role.MENTOR, 4, "Engineering", date(2018, 1, 1), capacity=1),
            people[1],
            member(program, "E1", Role.MENTEE, 3, "Sales", date(2026, 10, 1),
                   do_not_pair_with=frozenset({"M2"}), manager_id="M1"),
            member(program, "M3", Role.MENTOR, 4, "Operations", date(2017, 1, 1)),
            member(program, "E3", Role.MENTEE, 3, "Marketing", date(2027, 1, 25),
                   manager_id="M3", do_not_pair_with=frozenset({"M2"})),
            member(program, "E4", Role.MENTEE, 3, "Marketing", date(2027, 1, 26)),
        ]
        export = write(tmp_path / "people-week3.csv", week3, program)

        plan, result = await sync_roster(db_pool, env.client, cohort_id, export,
                                         synced_by="hr-feed", apply=True)
        assert result is not None
        assert result.joined == ["E3", "E4", "M3"]
        assert result.left == ["E2"] and result.ended == [e2_pairing]
        assert sorted(result.changed) == ["E1", "M1"]
        # The manager change breaks the reporting-chain rule: flagged, not ended.
        assert [(f.pairing_id, f.constraint, f.changed_employee_id) for f in result.flagged] == [
            (e1_pairing, "reporting_chain", "E1")]
        # Joiners: matched the same day against remaining places. M1's lowered capacity (1,
        # E1 still running) offers no new place but ends nothing; E3 may have neither M2
        # (do-not-pair) nor M3 (their manager), so stays unmatched; E4 gets a free mentor.
        proposed = {(p.mentor, p.mentee) for p in result.proposed}
        assert all(m not in ("M2", "M3") for m, mentee in proposed if mentee == "E3")
        assert all(m != "M1" for m, _ in proposed)
        assert any(mentee == "E4" for _, mentee in proposed)
        assert result.awaiting_approval is False
        state = await wait_for(
            handle, lambda s: sum(a.mentee_id == "E4" for a in s.active.values()) == 1
            and e2_pairing not in s.active, "joiners launched, leaver ended")
        assert "E2" in state.left and e1_pairing in state.active
        assert state.active[e1_pairing].mentor_id == "M1"  # the existing pair is not disturbed
        joiner_pairing = next(k for k, a in state.active.items() if a.mentee_id == "E4")
        joiner = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                    pairing_workflow_id(joiner_pairing))
        # Each workflow has its own clock here: bring the new pairing's to the cohort's.
        await advance_to(env, joiner, state.starts_at + timedelta(days=21, minutes=5))
        joined_state = await started_state(joiner)
        assert joined_state.started_at >= state.starts_at + timedelta(days=21)
        assert joined_state.rules.program_length_days == program.ground_rules.program_length_days

        types = await stream_types(db_pool, cohort_stream(cohort_id))
        assert types.count("RosterSynced") == 1 and "RosterConflictFlagged" in types
        assert "ParticipantLeft" in types
        # The flagged pair was offered a no-fault exit (both sides) and keeps running.
        flagged_pair = await store.read_stream(pairing_stream(e1_pairing))
        offer = [r for r in flagged_pair if r.type == "ExitOffered"]
        assert offer and offer[-1].payload["because"] == "roster_change"
        assert sorted(offer[-1].payload["offered_to"]) == ["mentee", "mentor"]
        assert "PairingExited" not in [r.type for r in flagged_pair]
        note = await db_pool.fetchrow(
            "SELECT recipient, payload FROM deliveries WHERE template = $1",
            "roster_change_flagged")
        assert note["recipient"] == f"coordinator:{cohort_id}"
        assert json.loads(note["payload"])["constraint"] == "reporting_chain"
        # The mentee can take the offer: a no-fault exit, like any other.
        e1 = env.client.get_workflow_handle_for(PairingWorkflow.run,
                                                pairing_workflow_id(e1_pairing))
        await e1.execute_update(PairingWorkflow.request_exit, c.RequestExit(
            actor=c.Actor.employee("E1"), reason=e.ExitReason.ROLE_CHANGE))
        await wait_for(handle, lambda s: e1_pairing not in s.active, "flagged pair exited")

        # The same file again: nothing to do, nothing recorded.
        version = len(await store.read_stream(cohort_stream(cohort_id)))
        plan, again = await sync_roster(db_pool, env.client, cohort_id, export,
                                        synced_by="hr-feed", apply=True)
        assert plan.diff.is_empty and again is None
        assert len(await store.read_stream(cohort_stream(cohort_id))) == version

        # A malformed export changes nothing and says where it is wrong.
        broken = tmp_path / "broken.csv"
        text = export.read_text(encoding="utf-8").splitlines()
        assert text[3].startswith("E1,")
        text[3] = text[3].replace(",mentee,", ",mentorish,", 1)
        broken.write_text("\n".join(text) + "\n", encoding="utf-8")
        with pytest.raises(IntakeError) as bad:
            await sync_roster(db_pool, env.client, cohort_id, broken, synced_by="hr-feed",
                              apply=True)
        problem = bad.value.problems[0]
        assert problem.file.endswith("broken.csv")
        assert (problem.line, problem.column) == (4, "role")
        assert len(await store.read_stream(cohort_stream(cohort_id))) == version

        # The leaver counts in retention (their one-year window is still open: reported as
        # such, and as not retained once it closes).
        await past_horizon(db_pool)
        await Projector(store).catch_up()
        report = await cohort_report(db_pool, cohort_id)
        assert report.retention["retention_1y"].left_while_window_open == 1

        # The roster as of before the sync is the one the cohort started with.
        past = await roster_as_of(db_pool, store, cohort_id, before_sync)
        assert past.digest == digest_at_start and past.syncs_after == 1
        assert sorted(p.employee_id for p in past.members) == ["E1", "E2", "M1", "M2"]
        now = await roster_as_of(db_pool, store, cohort_id,
                                 state.starts_at + timedelta(days=400))
        assert {"E3", "E4", "M3"} <= {p.employee_id for p in now.members}
        assert "E2" in now.left
        state = await handle.query(CohortWorkflow.state)
        assert isinstance(state, CohortState)
        # Joiners, a leaver, a flagged pair and its exit: the sync path's replay contract.
        await maybe_record_history(handle, "cohort_v2_roster_sync")


async def test_a_dry_run_shows_the_difference_and_records_nothing(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.MANUAL})
    people = roster(program)
    env = temporal_env
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people)
        cohort_id = handle.id.removeprefix("cohort-")
        await wait_for(handle, lambda s: s.phase.value == "awaiting_approval", "proposed")
        export = write(tmp_path / "people.csv", people[:3], program)
        plan = await plan_roster_sync(db_pool, cohort_id, export)
        assert plan.diff.leavers == ("E2",)
        # Before approval a sync is refused (the proposal would have to change under ops).
        from temporalio.client import WorkflowUpdateFailedError

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await sync_roster(db_pool, env.client, cohort_id, export, synced_by="hr",
                              apply=True)
        assert getattr(refused.value.cause, "type", "") == "cohort_not_running"
        assert "RosterSynced" not in await stream_types(db_pool, cohort_stream(cohort_id))


async def test_a_schedule_runs_the_sync_from_a_file_and_can_be_removed(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str, tmp_path: Path
) -> None:
    from temporalio.worker import Worker

    from contracts.roster_feed import roster_feed_schedule_id
    from delivery.channels import LogChannel
    from sebaya.bootstrap import build_registry, build_worker_activities
    from sebaya.roster_feed import (
        RosterFeedActivities,
        schedule_roster_sync,
        unschedule_roster_sync,
    )
    from sebaya.settings import Settings
    from workflows import ALL_WORKFLOWS

    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.AUTO})
    people = roster(program)
    env = temporal_env
    activities = [*build_worker_activities(db_pool, build_registry(), Settings(),
                                             client=env.client, channel=LogChannel()),
                  RosterFeedActivities(db_pool, env.client).sync_from_source]
    async with Worker(env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS,
                      activities=activities):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people)
        cohort_id = handle.id.removeprefix("cohort-")
        state = await wait_for(handle, lambda s: s.phase.value == "scheduled", "approved")
        await advance_to(env, handle, state.starts_at + timedelta(minutes=1))
        await wait_for(handle, lambda s: s.launched == 2, "launched")
        joiner = member(program, "E4", Role.MENTEE, 3, "Marketing", date(2027, 1, 26))
        export = write(tmp_path / "people.csv", [*people, joiner], program)

        schedule_id = await schedule_roster_sync(
            env.client, cohort_id=cohort_id, source=str(export), synced_by="hr-feed",
            every=timedelta(days=1), task_queue=task_queue)
        assert schedule_id == roster_feed_schedule_id(cohort_id)
        # Scheduling again replaces the timetable instead of failing.
        await schedule_roster_sync(
            env.client, cohort_id=cohort_id, source=str(export), synced_by="hr-feed",
            every=timedelta(hours=12), task_queue=task_queue)
        schedule = env.client.get_schedule_handle(schedule_id)
        described = await schedule.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(hours=12)
        await schedule.trigger()
        state = await wait_for(handle, lambda s: "E4" in s.joined
                               and any(a.mentee_id == "E4" for a in s.active.values()),
                               "the scheduled sync matched the joiner")
        types = await stream_types(db_pool, cohort_stream(cohort_id))
        synced = [r for r in await store_for(db_pool).read_stream(cohort_stream(cohort_id))
                  if r.type == "RosterSynced"]
        assert len(synced) == 1 and synced[0].payload["source"] == str(export)
        assert synced[0].metadata.actor == "ops:hr-feed"
        assert "MatchRunRecorded" in types
        # A second run on the same file changes nothing.
        await schedule.trigger()
        for _ in range(200):
            runs = (await schedule.describe()).info.recent_actions
            if len(runs) >= 2:
                result = await env.client.get_workflow_handle(
                    runs[-1].action.workflow_id,
                    first_execution_run_id=runs[-1].action.first_execution_run_id).result()
                break
            await asyncio.sleep(0.1)  # real-time poll for the schedule's second action
        else:
            raise AssertionError("the schedule never ran twice")
        assert result["applied"] is False and result["summary"] == "no changes"
        assert [r.type for r in await store_for(db_pool).read_stream(
            cohort_stream(cohort_id))].count("RosterSynced") == 1
        assert await unschedule_roster_sync(env.client, cohort_id)
        assert not await unschedule_roster_sync(env.client, cohort_id)


async def test_the_cli_shows_then_applies_and_a_joiner_after_the_window_is_not_matched(
    temporal_env: Any, db_pool: asyncpg.Pool, db_dsn: str, task_queue: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sebaya.settings import get_settings
    from tests.audit.cli import output_json, sebaya

    program = load_program(EXAMPLES / "program.yaml").model_copy(
        update={"approval": Approval.AUTO})
    people = roster(program)
    env = temporal_env
    async with running_worker(env.client, db_pool, task_queue):
        handle = await start_cohort(env.client, db_pool, task_queue, program, people)
        cohort_id = handle.id.removeprefix("cohort-")
        state = await wait_for(handle, lambda s: s.phase.value == "scheduled", "approved")
        assert state.rematch_until is not None
        # Past 60% of the program (rematch.allowed_until_share): no new pairing starts.
        await advance_to(env, handle, state.rematch_until + timedelta(days=3))
        await wait_for(handle, lambda s: s.launched == 2, "launched")
        joiner = member(program, "E4", Role.MENTEE, 3, "Marketing", date(2027, 4, 20))
        export = write(tmp_path / "people-may.csv", [*people, joiner], program)

        monkeypatch.setenv("SEBAYA_DATABASE_URL", db_dsn)
        monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
        get_settings.cache_clear()
        try:
            shown = await sebaya("cohort", "sync", cohort_id, str(export))
            assert shown.exit_code == 0, shown.output
            assert "+ E4 joins as mentee" in shown.output and "dry run" in shown.output
            applied = await sebaya("cohort", "sync", cohort_id, str(export), "--apply",
                                   "--by", "hr-ani", "--json")
            assert applied.exit_code == 0, applied.output
            doc = output_json(applied)
            assert doc["applied"]["joined"] == ["E4"] and doc["applied"]["proposed"] == []
            run_id = doc["applied"]["joiner_run_id"]
            runs = [r.payload for r in await store_for(db_pool).read_stream(
                cohort_stream(cohort_id)) if r.type == "MatchRunRecorded"]
            late = next(r for r in runs if r["run_id"] == run_id)
            assert late["kind"] == "joiners" and late["pair_count"] == 0
            assert "joined after new pairings closed" in late["unmatched"][0]["reason"]

            text = export.read_text(encoding="utf-8").replace(",Marketing,", ",,", 1)
            broken = tmp_path / "broken.csv"
            broken.write_text(text, encoding="utf-8")
            refused = await sebaya("cohort", "sync", cohort_id, str(broken), "--apply")
            assert refused.exit_code == 1
            assert "broken.csv:" in refused.output and ":department:" in refused.output
            assert "nothing was recorded" in refused.output

            as_of = await sebaya("cohort", "roster", cohort_id, "--as-of",
                                 program.start_date.isoformat(), "--json")
            assert as_of.exit_code == 0, as_of.output
            assert [m["employee_id"] for m in output_json(as_of)["members"]] == [
                "E1", "E2", "M1", "M2"]
            now = await sebaya("cohort", "roster", cohort_id, "--as-of", "2028-01-01", "--json")
            assert "E4" in [m["employee_id"] for m in output_json(now)["members"]]
        finally:
            get_settings.cache_clear()


def test_an_export_is_fetched_from_a_url_or_read_from_a_path(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    from sebaya.roster_feed import fetch_export, parse_every

    program = load_program(EXAMPLES / "program.yaml")
    served = tmp_path / "served"
    served.mkdir()
    write(served / "people-week3.csv", roster(program), program)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/people-week3.csv"
        into = tmp_path / "download"
        into.mkdir()
        fetched = fetch_export(url, into)
        assert fetched.name == "people-week3.csv"
        assert fetched.read_bytes() == (served / "people-week3.csv").read_bytes()
        with pytest.raises(Exception, match="404"):
            fetch_export(url.replace("week3", "week4"), into)
    finally:
        server.shutdown()
        server.server_close()
    assert fetch_export(str(served / "people-week3.csv"), into) == served / "people-week3.csv"
    with pytest.raises(FileNotFoundError):
        fetch_export(str(tmp_path / "missing.csv"), into)
    assert parse_every("daily") == timedelta(days=1) and parse_every("12h") == timedelta(hours=12)
    for bad in ("1m", "every day", "0d"):
        with pytest.raises(ValueError):
            parse_every(bad)
