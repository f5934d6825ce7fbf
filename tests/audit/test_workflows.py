"""Against real PairingWorkflows on the Temporal dev server: replay agrees with the live
workflow and the read model; the determinism check passes on the current code and catches a
changed workflow on a real recorded history."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowHistory

from audit.determinism import check_determinism, replay_histories
from audit.replay import replay_pairing
from domain import commands as c
from domain import events as e
from eventstore import EventStore
from projections import Projector
from sebaya.settings import get_settings
from tests.audit.changed_workflow import SlowStartPairingWorkflow
from tests.audit.cli import output_json, sebaya
from tests.audit.live import first_weeks, start
from tests.projections.views import past_horizon
from tests.workflows.altered import DelayedMatchingCohortWorkflow
from tests.workflows.harness import running_worker, store_for
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


async def test_replay_agrees_with_the_live_workflow_and_the_read_model(
    temporal_env: Any, db_pool: asyncpg.Pool, db_dsn: str, task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store: EventStore = store_for(db_pool)
    cohort = f"CT{uuid.uuid4().hex[:6]}"
    async with running_worker(temporal_env.client, db_pool, task_queue):
        handle = await start(temporal_env.client, task_queue, cohort, "M1", "E1")
        await first_weeks(temporal_env, handle, "M1", "E1")
        live = await handle.query(PairingWorkflow.state)
        assert live.meetings_held == 1 and live.meetings_missed == 1 and live.nudged
        await past_horizon(db_pool)
        await Projector(store).catch_up()

        result = await replay_pairing(store, live.pairing_id, client=temporal_env.client)
        assert result.state == live
        read_model, workflow = result.comparisons
        assert read_model.available and read_model.differences == []
        assert workflow.available and workflow.differences == []

        # The CLI finds both services through the environment.
        monkeypatch.setenv("SEBAYA_DATABASE_URL", db_dsn)
        monkeypatch.setenv("TEMPORAL_ADDRESS",
                           temporal_env.client.service_client.config.target_host)
        get_settings.cache_clear()
        try:
            shown = await sebaya("audit", "replay", live.pairing_id, "--json")
            assert shown.exit_code == 0, shown.output
            document = output_json(shown)
            assert [(x["source"], x["available"], x["differences"])
                    for x in document["comparisons"]] == [
                ("read_model", True, []), ("workflow", True, [])]
            history = output_json(await sebaya("audit", "history", live.pairing_id, "--json"))
            assert [t["type"] for t in history["timeline"]].count("MeetingMissed") == 1
        finally:
            get_settings.cache_clear()

        await handle.execute_update(PairingWorkflow.request_exit, c.RequestExit(
            actor=c.Actor.employee("M1"), reason=e.ExitReason.WORKLOAD))
        await handle.result()
    # Finished: the store alone is the record now; nothing running to compare with.
    await past_horizon(db_pool)
    await Projector(store).catch_up()
    finished = await replay_pairing(store, live.pairing_id, client=temporal_env.client)
    read_model, workflow = finished.comparisons
    assert read_model.differences == [] and not workflow.available
    assert finished.consistent


async def test_determinism_passes_now_and_catches_a_changed_workflow(
    temporal_env: Any, db_pool: asyncpg.Pool, db_dsn: str, task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cohort = f"CT{uuid.uuid4().hex[:6]}"
    async with running_worker(temporal_env.client, db_pool, task_queue):
        handles = [await start(temporal_env.client, task_queue, cohort, f"M{i}", f"E{i}")
                   for i in (1, 2)]
        await asyncio.gather(*(first_weeks(temporal_env, h, f"M{i}", f"E{i}")
                               for i, h in zip((1, 2), handles, strict=True)))
        await handles[1].execute_update(PairingWorkflow.request_exit, c.RequestExit(
            actor=c.Actor.ops("ops-test"), reason=e.ExitReason.OTHER))
        await handles[1].result()

        # Visibility is eventually consistent: wait until the cohort's two runs are listed.
        for _ in range(100):
            report = await check_determinism(temporal_env.client, cohort_id=cohort)
            if report.checked == 2:
                break
            await asyncio.sleep(0.1)
        assert report.checked == 2 and report.ok, report.failures
        assert {v.workflow_id for v in report.verdicts} == {h.id for h in handles}

        changed = await check_determinism(temporal_env.client, cohort_id=cohort,
                                          workflows=[SlowStartPairingWorkflow])
        assert changed.checked == 2 and not changed.ok
        assert all(v.nondeterministic for v in changed.verdicts), changed.verdicts
        assert "Nondeterminism" in (changed.verdicts[0].error or "")

        one = await check_determinism(temporal_env.client, workflow_id=handles[0].id)
        assert one.checked == 1 and one.ok and one.query is None

        monkeypatch.setenv("TEMPORAL_ADDRESS",
                           temporal_env.client.service_client.config.target_host)
        # The CLI must not depend on a local embedded stack (CI has none): name both services.
        monkeypatch.setenv("SEBAYA_DATABASE_URL", db_dsn)
        get_settings.cache_clear()
        try:
            shown = await sebaya("audit", "determinism", "--cohort", cohort, "--json")
            assert shown.exit_code == 0, shown.output
            assert output_json(shown)["checked"] == 2
        finally:
            get_settings.cache_clear()


@pytest.mark.skipif(not HISTORIES, reason="no committed histories")
async def test_committed_histories_replay_and_a_changed_workflow_does_not() -> None:
    histories = [WorkflowHistory.from_json(p.stem, p.read_text()) for p in HISTORIES]
    current = await replay_histories(histories)
    assert current.ok and current.checked == len(histories)
    changed = await replay_histories(
        histories, workflows=[SlowStartPairingWorkflow, DelayedMatchingCohortWorkflow])
    assert changed.checked == len(histories)
    assert all(not v.ok and v.nondeterministic for v in changed.verdicts)
    assert any(v.workflow_id.startswith("cohort_") for v in changed.verdicts)
