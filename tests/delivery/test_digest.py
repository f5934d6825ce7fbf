"""The coordinator's weekly digest: when it goes out, what it says, and the durable weekly timer
on the real dev server reading real read models (the sample cohort's events, projected)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from adapters.roster import register_cohort
from delivery.digest import digest_data, digest_key, next_digest_at, period_label
from delivery.message import Renderer
from domain import events as e
from domain.program import Baseline, Objective, ObjectiveKind, ProgramSpec
from eventstore import EventStore
from projections import Projector
from projections.queries import AtRisk, CohortStatus, PairingRow
from sebaya.bootstrap import build_registry
from tests.projections.lifecycles import OPS, T0, append_decisions, rules, sample_cohort
from tests.projections.views import past_horizon
from tests.workflows.harness import running_worker
from workflows.digest import CoordinatorDigestWorkflow, DigestInput, digest_workflow_id

JAKARTA = ZoneInfo("Asia/Jakarta")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_digest_goes_out_monday_eight_local_across_dst() -> None:
    amsterdam = ZoneInfo("Europe/Amsterdam")
    # Thursday 22 October 2026; clocks go back on Sunday 25 October.
    at = next_digest_at(datetime(2026, 10, 22, 12, tzinfo=UTC), "Europe/Amsterdam")
    assert at.astimezone(amsterdam) == datetime(2026, 10, 26, 8, tzinfo=amsterdam)
    assert at == datetime(2026, 10, 26, 7, tzinfo=UTC)
    # Exactly at the digest time: the next one is a week later, not the same instant again.
    assert next_digest_at(at, "Europe/Amsterdam") == datetime(2026, 11, 2, 7, tzinfo=UTC)
    assert next_digest_at(datetime(2026, 10, 26, 6, 59, tzinfo=UTC), "Europe/Amsterdam") == at


def test_period_and_key_name_the_week_before() -> None:
    end = datetime(2026, 11, 30, 8, tzinfo=JAKARTA)
    assert period_label(end, "Asia/Jakarta", "id") == "23 November 2026 - 29 November 2026"
    assert period_label(end, "Asia/Jakarta", "en") == "23 November 2026 - 29 November 2026"
    assert digest_key("C1", end) == "digest-C1-2026-11-30:coordinator:C1:coordinator_digest"


PROGRAM = ProgramSpec(
    name="Program Mentoring 2025",
    objective=Objective(kind=ObjectiveKind.NEW_HIRE_RETENTION, description="Retensi",
                        metric="retention_45d"),
    baseline=Baseline(retention_45d=0.78),
    start_date=T0.date(),
    ground_rules=rules(),
)


@pytest.mark.temporal
async def test_weekly_digest_lists_pairings_at_risk_then_ends_with_the_cohort(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    store = EventStore(db_pool, build_registry())
    cohort = sample_cohort("C1")
    versions: dict[str, int] = {}
    await append_decisions(store, cohort.all_decisions(), versions)
    await register_cohort(db_pool, "C1", PROGRAM, [])
    # The silent pair's mentor has an address that bounces.
    await db_pool.execute(
        "INSERT INTO deliveries (idempotency_key, recipient, template, status) "
        "VALUES ('x:M05:reminder_meeting', 'M05', 'reminder_meeting', 'dead')")
    await past_horizon(db_pool)
    await Projector(store).catch_up()

    client = temporal_env.client
    async with running_worker(client, db_pool, task_queue):
        handle = await client.start_workflow(
            CoordinatorDigestWorkflow.run,
            DigestInput(cohort_id="C1", timezone="Asia/Jakarta"),
            id=digest_workflow_id(f"C1-{task_queue}"), task_queue=task_queue,
        )
        started = await temporal_env.get_current_time(handle)
        first = next_digest_at(started, "Asia/Jakarta")
        await temporal_env.fast_forward(handle, first - started + timedelta(hours=1))
        rows = await db_pool.fetch(
            "SELECT idempotency_key, recipient, status, payload::text AS payload "
            "FROM deliveries WHERE template = 'coordinator_digest'")
        assert [(r["idempotency_key"], r["recipient"], r["status"]) for r in rows] == [
            (digest_key("C1", first), "coordinator:C1", "sent")]  # rendered and handed over
        data = json.loads(rows[0]["payload"])
        assert data["period"] == period_label(first, "Asia/Jakarta", "id")
        assert data["counts"]["Pasangan berjalan"] == 1
        assert data["counts"]["Perlu perhatian"] == 1
        assert data["counts"]["Selesai"] == 3 and data["counts"]["Berakhir lebih awal"] == 2
        [item] = data["attention"]
        assert item["pairing_id"] == "C1.E05.M05.1"
        assert "dieskalasi ke koordinator (1x)" in item["text"]
        assert "pertemuan berturut-turut terlewat" in item["text"]
        assert "tujuan belum ditetapkan (mentor, mentee)" in item["text"]
        assert "pesan ke mentor M05 gagal terkirim (dead)" in item["text"]

        # The silent pair is ended by ops and the cohort completes; next Monday the digest
        # sees the cohort ended and stops, without a second message.
        before = {id(d) for d in cohort.all_decisions()}
        silent = cohort.pairings["C1.E05.M05.1"]
        silent.exit(silent.started_at + timedelta(days=61), actor=OPS,
                    reason=e.ExitReason.INACTIVITY)
        cohort.ended(silent)
        cohort.complete(silent.started_at + timedelta(days=200))
        await append_decisions(store, [d for d in cohort.all_decisions() if id(d) not in before],
                               versions)
        await past_horizon(db_pool)
        await Projector(store).catch_up()
        await temporal_env.fast_forward(handle, timedelta(days=7))
        assert await handle.result() == 1
    assert await db_pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE template = 'coordinator_digest'") == 1


def _row(**overrides: object) -> PairingRow:
    values: dict[str, object] = dict(
        pairing_id="C1.E1.M1.1", cohort_id="C1", mentor_id="M1", mentee_id="E1",
        phase="active", started_at=T0, ended_at=None, goal_deadline_at=None,
        midpoint_opens_at=None, program_ends_at=None, goals_set_mentor=True,
        goals_set_mentee=True, goals={}, goal_progress={}, meetings_held=2,
        meetings_missed=0, consecutive_missed=0, minutes_met=120, last_meeting_at=None,
        next_meeting_no=3, next_meeting_at=None, nudged=False, escalated=False,
        escalations=0, goals_overdue=False, midpoint={}, midpoint_closed=False, final={},
        exit_reason=None, exit_initiated_by=None, exit_phase=None, leaving_employee_id=None,
        rematch_of=None, match_score=0.8, cross_functional=None, topics_covered={},
        stream_version=9, last_event_at=T0, updated_at=T0)
    values.update(overrides)
    return PairingRow.model_validate(values)


def test_digest_data_in_english_names_nudges_and_failing_addresses_only_for_open_pairs() -> None:
    rows = [
        _row(),  # fine
        _row(pairing_id="C1.E2.M2.1", mentor_id="M2", mentee_id="E2", nudged=True,
             consecutive_missed=1),
        _row(pairing_id="C1.E3.M3.1", mentor_id="M3", mentee_id="E3"),  # mentee bounces
        _row(pairing_id="C1.E4.M4.1", mentor_id="M4", mentee_id="E4", phase="exited",
             escalated=True, escalations=1),  # closed: never listed
    ]
    status = CohortStatus(
        cohort_id="C1", program_name="P", phase="running", starts_at=T0, ends_at=None,
        rematch_until=None, pairings_total=4, by_phase={"active": 3, "exited": 1}, launched=4,
        rematches=0, at_risk=[AtRisk(pairing_id="C1.E2.M2.1", mentor_id="M2", mentee_id="E2",
                                     phase="active", reasons=["1 meeting(s) missed in a row"],
                                     consecutive_missed=1, meetings_missed=1, escalations=0,
                                     last_meeting_at=None)],
        waiting=[], left_company={}, next_due=[], as_of=T0, projected_until=T0)
    data = digest_data(status, rows, {"E3": "failed", "M4": "dead"},
                       period_end=datetime(2026, 11, 30, 1, tzinfo=UTC),
                       timezone="Asia/Jakarta", language="en")
    assert data["attention"] == [
        {"pairing_id": "C1.E2.M2.1",
         "text": "1 meeting(s) missed in a row; nudged about missed meetings"},
        {"pairing_id": "C1.E3.M3.1", "text": "messages to mentee E3 are failing (failed)"},
    ]
    assert data["counts"] == {"Pairings running": 3, "Need attention": 2, "Completed": 0,
                              "Ended early": 1, "Waiting for a partner": 0}
    # What the coordinator reads: the delivery layer's own template, fed this data.
    message = Renderer().render("coordinator_digest", data, language="en",
                                recipient="coordinator:C1")
    assert "23 November 2026 - 29 November 2026" in message.subject
    assert "Need attention: 2" in message.text
    assert "- C1.E3.M3.1: messages to mentee E3 are failing (failed)" in message.text


@pytest.mark.temporal
async def test_starting_a_cohort_starts_its_digest(
    temporal_env, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    from temporalio.client import WorkflowExecutionStatus

    from intake import load_people, load_program
    from sebaya.operations import start_cohort

    program = load_program(EXAMPLES / "program.yaml")
    people = load_people(EXAMPLES / "people.csv", program)
    cohort_id = f"dg-{task_queue}"
    client = temporal_env.client
    async with running_worker(client, db_pool, task_queue):
        cohort = await start_cohort(db_pool, client, program=program, people=people,
                                    task_queue=task_queue, cohort_id=cohort_id)
        digest = client.get_workflow_handle(digest_workflow_id(cohort_id))
        described = await digest.describe()
        assert described.status is WorkflowExecutionStatus.RUNNING
        assert described.workflow_type == "CoordinatorDigestWorkflow"
        # The cohort is terminated by ops: the next Monday's run sees it closed and ends.
        await cohort.terminate("test over")
        started = await temporal_env.get_current_time(digest)
        await temporal_env.fast_forward(
            digest, next_digest_at(started, program.ground_rules.timezone) - started
            + timedelta(hours=1))
        assert await digest.result() == 0
