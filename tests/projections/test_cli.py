"""``sebaya projections``: rebuild, catch-up and status through the CLI."""

from __future__ import annotations

import json

import asyncpg

from sebaya.samples.lifecycles import CohortSim
from tests.audit.cli import sebaya
from tests.projections.views import dump_views


async def test_rebuild_catch_up_and_status(
    db_pool: asyncpg.Pool, cohort: CohortSim, cli_env: None
) -> None:
    total = sum(len(d.events) for d in cohort.all_decisions())
    before = await sebaya("projections", "status", "--json")
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout)["events_behind"] == total

    caught = await sebaya("projections", "catch-up")
    assert caught.exit_code == 0 and f"projected {total} event(s)" in caught.stdout
    projected = await dump_views(db_pool)

    rebuilt = await sebaya("projections", "rebuild", "--json")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout)["events"] == total
    assert await dump_views(db_pool) == projected

    status = await sebaya("projections", "status")
    assert status.exit_code == 0
    assert f"{total} event(s) applied, 0 behind" in status.stdout
