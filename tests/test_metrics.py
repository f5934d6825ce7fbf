"""The worker's Prometheus endpoint after real work: a pairing starts (events appended,
notifications delivered), an update is refused, the projector falls behind and catches up.
Scraped over HTTP, exactly as Prometheus would."""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.request
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from delivery.channels import LogChannel
from domain import commands as c
from projections import Projector
from sebaya.bootstrap import build_registry, build_worker_activities
from sebaya.metrics import MetricsConfigError, metrics_runtime, refresh_store_gauges
from sebaya.runtime import Services, connect_temporal
from sebaya.settings import Settings
from tests.projections.views import past_horizon
from tests.workflows.harness import (
    MENTEE_ACTOR,
    advance_by,
    goals,
    start_pairing,
    started_state,
    store_for,
)
from worker import run_worker
from workflows.pairing import PairingWorkflow

pytestmark = pytest.mark.temporal

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? "
                    r"(?P<value>\S+)$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(address: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def value(samples: list[tuple[str, dict[str, str], float]], name: str,
          **labels: str) -> float | None:
    found = [v for n, lab, v in samples if n == name and labels.items() <= lab.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


async def test_the_endpoint_serves_sdk_and_sebaya_metrics_after_real_work(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    settings = Settings(SEBAYA_TASK_QUEUE=task_queue, SEBAYA_METRICS_ADDRESS=address)
    base: Client = temporal_env.client
    services = Services(database_url="", temporal_address=base.service_client.config.target_host,
                        namespace=base.namespace, task_queue=task_queue)
    client = await connect_temporal(services, settings=settings, runtime=runtime)
    stop = asyncio.Event()
    activities = build_worker_activities(db_pool, build_registry(), Settings(), client=client,
                                         channel=LogChannel())
    worker = asyncio.create_task(run_worker(client, settings, activities, stop=stop))
    try:
        before = await asyncio.to_thread(scrape, address)
        handle = await start_pairing(client, task_queue)
        await started_state(handle)
        await advance_by(temporal_env, handle, timedelta(hours=1))
        await handle.execute_update(PairingWorkflow.set_goals,
                                    c.SetGoals(actor=MENTEE_ACTOR, goals=goals("it")))
        with pytest.raises(WorkflowUpdateFailedError):  # the mentee's goal ids: refused
            await handle.execute_update(PairingWorkflow.set_goals, c.SetGoals(
                actor=c.Actor.employee("M001"), goals=goals("it")))
        await refresh_store_gauges(db_pool)
        samples = await asyncio.to_thread(scrape, address)
    finally:
        stop.set()
        await worker

    # The SDK's own metrics, from the same endpoint.
    assert any(name.startswith("temporal_") for name, _, _ in samples)
    assert value(samples, "temporal_workflow_task_execution_latency_count",
                 task_queue=task_queue) is not None

    store = store_for(db_pool)
    stored = [r.type for r in await store.read_stream(f"pairing-{handle.id.split('-', 1)[1]}")]
    assert stored.count("GoalsSet") == 1
    for event_type in set(stored):
        counted = value(samples, "sebaya_events_appended_total", event_type=event_type)
        earlier = value(before, "sebaya_events_appended_total", event_type=event_type) or 0
        assert counted is not None and counted - earlier == stored.count(event_type), event_type

    refused = value(samples, "sebaya_update_refusals_total", update="set_goals",
                    task_queue=task_queue, workflow_type="PairingWorkflow")
    assert refused == 1

    async with db_pool.acquire() as conn:
        by_status = dict(await conn.fetch("SELECT status, count(*) FROM deliveries "
                                          "GROUP BY status"))
    assert sum(by_status.values()) >= 2  # the match was announced to both
    for status, count in by_status.items():
        assert value(samples, "sebaya_deliveries", status=status) == count

    behind = value(samples, "sebaya_projector_events_behind", projection="read_models")
    assert behind is not None and behind >= len(stored)
    lag = value(samples, "sebaya_projector_lag_seconds", projection="read_models")
    assert lag is not None and lag > 0

    # Once the projector has caught up, the lag gauges drop to zero.
    await past_horizon(db_pool)
    await Projector(store).catch_up()
    await refresh_store_gauges(db_pool)
    samples = await asyncio.to_thread(scrape, address)
    assert value(samples, "sebaya_projector_events_behind", projection="read_models") == 0
    assert value(samples, "sebaya_projector_lag_seconds", projection="read_models") == 0


def test_a_bad_metrics_address_is_named() -> None:
    for address in ("9464", "localhost:", "localhost:99999"):
        with pytest.raises(MetricsConfigError, match="SEBAYA_METRICS_ADDRESS"):
            metrics_runtime(address)
