"""History and replay of a completed, an exited and a rematched pairing, from the store alone;
as-of in domain time and in recorded time; comparison with the read model."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from audit.history import PairingNotFound, pairing_history
from audit.replay import replay_pairing
from domain.pairing import Phase, fold
from eventstore import EventStore
from projections import Projector
from sebaya.samples.lifecycles import T0, CohortSim
from tests.audit.cli import output_json, sebaya

COMPLETED, EXITED, REMATCHED = "C1.E01.M01.1", "C1.E03.M03.1", "C1.E03.M01.1"


async def test_history_of_a_completed_pairing(store: EventStore, cohort: CohortSim) -> None:
    history = await pairing_history(store, COMPLETED)
    sim = cohort.pairings[COMPLETED]
    expected = [(ev.event_type, d.actor, d.occurred_at)
                for d in sim.decisions for ev in d.events]
    assert [(t.type, t.actor, t.occurred_at) for t in history.timeline] == expected
    assert [t.version for t in history.timeline] == list(range(1, len(expected) + 1))
    assert (history.cohort_id, history.mentor_id, history.mentee_id) == ("C1", "M01", "E01")
    first, *_, last = history.timeline
    assert first.type == "PairingMatched" and first.actor == "ops:ops-test"
    assert "matched mentor M01 with mentee E01 (score 0.910" in first.summary
    assert last.type == "PairingCompleted" and "25 meeting(s) held" in last.summary
    goals = [t for t in history.timeline if t.type == "GoalsSet"]
    assert [t.actor for t in goals] == ["employee:E01", "employee:M01"]
    assert all(t.workflow_id == f"pairing-{COMPLETED}" for t in history.timeline)
    # Why the pair was matched: the score and explanation it started with, and the recorded
    # match run that proposed it (input digest, algorithm version) and who approved it.
    match = history.match
    assert match is not None
    assert match.score == 0.91 and match.explanation["cross_functional"]["value"] == 1.0
    assert (match.run_id, match.run_kind, match.algorithm_version) == (
        "run-1", "initial", "sebaya-match/1")
    assert match.input_digest == "sha256:" + "cd" * 32
    assert match.approved_by == "ops:ops-test" and match.proposed_score == 0.91
    assert match.launched_at == T0 and match.rematch_of is None


async def test_history_of_an_exited_and_a_rematched_pairing(
    store: EventStore, cohort: CohortSim
) -> None:
    exited = await pairing_history(store, EXITED)
    last = exited.timeline[-1]
    assert last.type == "PairingExited" and last.actor == "employee:M03"
    assert "exited by mentor during active: schedule_conflict" in last.summary

    rematched = await pairing_history(store, REMATCHED)
    match = rematched.match
    assert match is not None and match.rematch_of == EXITED
    assert (match.run_id, match.run_kind, match.input_digest) == (
        "run-2", "rematch", "sha256:" + "ef" * 32)
    assert match.matched_by == "system:sebaya"
    assert match.launched_at == cohort.pairings[REMATCHED].started_at
    assert "rematch of C1.E03.M03.1" in rematched.timeline[0].summary

    with pytest.raises(PairingNotFound):
        await pairing_history(store, "C1.nobody.M01.1")


@pytest.mark.parametrize("pairing_id", [COMPLETED, EXITED, REMATCHED])
async def test_replay_equals_the_fold_and_the_read_model(
    store: EventStore, cohort: CohortSim, pairing_id: str
) -> None:
    await Projector(store).catch_up()
    result = await replay_pairing(store, pairing_id)
    assert result.state == cohort.pairings[pairing_id].state
    assert result.events_applied == result.last_version == result.state.version
    (read_model,) = result.comparisons
    assert read_model.available and read_model.differences == []
    assert result.consistent


async def test_replay_as_of_domain_time(store: EventStore, cohort: CohortSim) -> None:
    sim = cohort.pairings[COMPLETED]
    for days in (0.5, 30, 95, 200):
        as_of = T0 + timedelta(days=days)
        result = await replay_pairing(store, COMPLETED, as_of=as_of)
        known = [ev for d in sim.decisions if d.occurred_at <= as_of for ev in d.events]
        assert result.state == fold(known)
        assert result.comparisons == [] and result.skipped_versions == []
    day30 = await replay_pairing(store, COMPLETED, as_of=T0 + timedelta(days=30))
    # Meetings on days 7, 14, 21 and 28.
    assert day30.state.phase is Phase.ACTIVE and day30.state.meetings_held == 4
    before = await replay_pairing(store, COMPLETED, as_of=T0 - timedelta(days=1))
    assert before.events_applied == 0 and before.state.phase is Phase.NOT_STARTED
    exited = await replay_pairing(store, EXITED, as_of=T0 + timedelta(days=39))
    assert exited.state.phase is Phase.ACTIVE  # the exit came on day 40


async def test_replay_as_of_recorded_time(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    # Everything was recorded just now, long after it happened in domain time: by recorded
    # time, the record held nothing a minute before the test began.
    now = await db_pool.fetchval("SELECT max(recorded_at) FROM events")
    early = await replay_pairing(store, COMPLETED, as_of=now - timedelta(hours=1),
                                 basis="recorded")
    assert early.events_applied == 0
    later = await replay_pairing(store, COMPLETED, as_of=now, basis="recorded")
    assert later.state == cohort.pairings[COMPLETED].state


async def test_replay_reports_a_read_model_that_differs(
    store: EventStore, db_pool: asyncpg.Pool, cohort: CohortSim
) -> None:
    await Projector(store).catch_up()
    await db_pool.execute("UPDATE pairing_view SET meetings_held = 99, phase = 'active' "
                          "WHERE pairing_id = $1", COMPLETED)
    result = await replay_pairing(store, COMPLETED)
    (read_model,) = result.comparisons
    assert {(d.field, d.replayed, d.other) for d in read_model.differences} == {
        ("meetings_held", 25, 99), ("phase", "completed", "active")}
    assert not result.consistent


async def test_cli_history_and_replay(
    store: EventStore, cohort: CohortSim, cli_env: None
) -> None:
    shown = await sebaya("audit", "history", REMATCHED)
    assert shown.exit_code == 0, shown.output
    assert "rematch of C1.E03.M03.1" in shown.stdout
    assert "match run run-2 (rematch), algorithm sebaya-rematch/1" in shown.stdout
    as_json = output_json(await sebaya("audit", "history", COMPLETED, "--json"))
    assert as_json["match"]["run_id"] == "run-1" and len(as_json["timeline"]) == 88

    # Not projected yet: the read model lags, and replay says so with exit code 1.
    lagging = await sebaya("audit", "replay", COMPLETED)
    assert lagging.exit_code == 1
    assert "no pairing_view row" in lagging.stdout
    projected = await sebaya("projections", "catch-up")
    assert projected.exit_code == 0, projected.output
    clean = await sebaya("audit", "replay", COMPLETED, "--json")
    assert clean.exit_code == 0, clean.output
    document = output_json(clean)
    assert document["state"]["phase"] == "completed"
    assert document["comparisons"][0]["differences"] == []
    as_of = await sebaya("audit", "replay", EXITED, "--as-of", "2025-04-01")
    assert as_of.exit_code == 0 and "phase active" in as_of.stdout
    missing = await sebaya("audit", "history", "C1.ghost.M9.1")
    assert missing.exit_code == 2 and "no events" in missing.stderr
