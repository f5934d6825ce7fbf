"""An event stored in an old shape reaches every reader in the current shape.

The scenario is a real schema change: ``GoalsSet`` v1 (written by an older deployment) named
the side ``by`` and gave goals a ``measure`` and no id; the current ``GoalsSet`` (v2 here)
has ``side``, ``goal_id`` and ``success_measure``. The composition root's registry carries the
legacy model and the upcaster; the store-reading activity, the projector and the audit tools
all read through it, so the workflow, the read models and the auditor see only v2.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict

from activities.envelope import envelopes
from audit.history import pairing_history
from audit.replay import replay_pairing
from domain import commands as c
from domain import events as e
from domain.catalog import EVENT_TYPES
from domain.ids import pairing_stream
from domain.pairing import PairingState, decide
from eventstore import EventStore
from projections.projector import Projector
from sebaya.bootstrap import build_registry
from tests.projections.views import past_horizon
from tests.workflows.harness import running_worker, six_month_rules
from workflows.pairing import PairingInput, PairingWorkflow


class LegacyGoal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    measure: str


class GoalsSetV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str] = "GoalsSet"
    schema_version: ClassVar[int] = 1

    by: e.Side
    goals: tuple[LegacyGoal, ...]


def goals_set_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "side": payload["by"],
        "revision": 1,
        "goals": [
            {"goal_id": f"g{i}", "title": g["title"], "success_measure": g["measure"]}
            for i, g in enumerate(payload["goals"], start=1)
        ],
    }


LEGACY_GOALS = GoalsSetV1(by=e.Side.MENTEE, goals=(
    LegacyGoal(title="Memahami proses rilis", measure="Merilis satu fitur sendiri"),
    LegacyGoal(title="Presentasi di depan tim", measure="Satu demo di sprint review"),
))


@pytest.fixture
def goals_set_is_v2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The code as deployed after the change: ``GoalsSet`` is written at v2."""
    monkeypatch.setattr(e.GoalsSet, "schema_version", 2)
    yield


def _old_registry() -> Any:
    """What the older deployment wrote with: GoalsSet v1 is the latest it knows."""
    return build_registry(
        event_types=[t for t in EVENT_TYPES if t is not e.GoalsSet] + [GoalsSetV1],
        legacy_models={}, upcasters={},
    )


def _new_registry() -> Any:
    return build_registry(legacy_models={("GoalsSet", 1): GoalsSetV1},
                          upcasters={("GoalsSet", 1): goals_set_v1_to_v2})


def _start(pairing_id: str) -> c.StartPairing:
    return c.StartPairing(
        actor=c.Actor.ops("ops-test"), pairing_id=pairing_id, cohort_id="C-upcast",
        mentor_id="M001", mentee_id="E001", ground_rules=six_month_rules(),
    )


async def _write_as_old_deployment(pool: asyncpg.Pool, start: c.StartPairing) -> None:
    """The older deployment's first batch for this pairing: the match, then the mentee's
    goals in the v1 shape. Same event ids as the current workflow derives for versions 1-2."""
    now = datetime(2027, 1, 4, 9, tzinfo=UTC)
    matched = decide(PairingState(), start, now)[0]
    stream = pairing_stream(start.pairing_id)
    batch = envelopes(stream, 0, [matched], ["ops:ops-test"], occurred_at=now)
    legacy = envelopes(stream, 1, [e.GoalsSet.model_construct()], ["employee:E001"],
                       occurred_at=now)[0].model_copy(update={
                           "type": "GoalsSet", "schema_version": 1,
                           "payload": LEGACY_GOALS.model_dump(mode="json")})
    await EventStore(pool, _old_registry()).append(stream, 0, [*batch, legacy])


def _assert_current_goals(goals: tuple[e.Goal, ...]) -> None:
    assert [(g.goal_id, g.success_measure) for g in goals] == [
        ("g1", "Merilis satu fitur sendiri"), ("g2", "Satu demo di sprint review")]


@pytest.mark.temporal
async def test_the_workflow_folds_the_upcast_shape(
    goals_set_is_v2: None, temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    start = _start(f"U{uuid.uuid4().hex[:8]}")
    await _write_as_old_deployment(db_pool, start)
    client = temporal_env.client
    async with running_worker(client, db_pool, task_queue, registry=_new_registry()):
        # The workflow's first append finds versions 1-2 stored (ids match): it adopts what
        # the store holds, read back through the store-reading activity, upcast to v2.
        handle = await client.start_workflow(
            PairingWorkflow.run, PairingInput(start=start),
            id=f"pairing-{start.pairing_id}", task_queue=task_queue)
        state: PairingState = await handle.query(PairingWorkflow.state)
        for _ in range(50):
            if state.version >= 2:
                break
            state = await handle.query(PairingWorkflow.state)
        await handle.terminate("test over")
    assert state.version == 2
    _assert_current_goals(state.goals[e.Side.MENTEE])


async def test_projector_and_audit_read_the_upcast_shape(
    goals_set_is_v2: None, db_pool: asyncpg.Pool
) -> None:
    start = _start(f"U{uuid.uuid4().hex[:8]}")
    await _write_as_old_deployment(db_pool, start)
    store = EventStore(db_pool, _new_registry())

    await past_horizon(db_pool)  # the projector reads only what no running transaction precedes
    await Projector(store).catch_up()
    view = await db_pool.fetchval(
        "SELECT goals FROM pairing_view WHERE pairing_id = $1", start.pairing_id)
    goals = json.loads(view) if isinstance(view, str) else view
    assert [g["goal_id"] for g in goals["mentee"]] == ["g1", "g2"]

    history = await pairing_history(store, start.pairing_id)
    assert [t.type for t in history.timeline] == ["PairingMatched", "GoalsSet"]
    replayed = await replay_pairing(store, start.pairing_id)
    _assert_current_goals(replayed.state.goals[e.Side.MENTEE])


async def test_a_reader_without_the_upcaster_refuses_rather_than_guessing(
    goals_set_is_v2: None, db_pool: asyncpg.Pool
) -> None:
    from eventstore.errors import UpcastError

    start = _start(f"U{uuid.uuid4().hex[:8]}")
    await _write_as_old_deployment(db_pool, start)
    no_upcaster = build_registry(legacy_models={("GoalsSet", 1): GoalsSetV1}, upcasters={})
    with pytest.raises(UpcastError, match="GoalsSet v1"):
        await replay_pairing(EventStore(db_pool, no_upcaster), start.pairing_id)
