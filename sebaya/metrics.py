"""The worker's Prometheus endpoint: the SDK's own metrics and Sebaya's, on one address.

``SEBAYA_METRICS_ADDRESS=host:port`` gives the worker a Temporal :class:`Runtime` whose
telemetry exports Prometheus at ``http://host:port/metrics``; :mod:`observability.metrics`
records into that runtime's meter. This module adds what only the worker can do: count
refused updates (a workflow interceptor) and refresh the gauges read from Postgres
(deliveries by status, projector lag). The runbook (``docs/operations.md``) lists the alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import asyncpg
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from observability import metrics
from projections.projector import DEFAULT_NAME, projection_status
from sebaya.logging import get_logger

__all__ = [
    "GAUGE_INTERVAL",
    "MetricsConfigError",
    "UpdateRefusalMetrics",
    "metrics_runtime",
    "refresh_store_gauges",
    "run_store_gauges",
]

# Postgres-derived gauges: cheap queries, and alerts work on minutes, so 15 s is plenty.
GAUGE_INTERVAL = 15.0

log = get_logger("sebaya.metrics")


class MetricsConfigError(ValueError):
    """``SEBAYA_METRICS_ADDRESS`` is unusable (the message says why)."""


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime exporting Prometheus on ``address`` (``host:port``), with Sebaya's
    metrics installed on its meter. Give it to ``connect_temporal(..., runtime=)``: workers
    take the runtime of their client."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MetricsConfigError(f"SEBAYA_METRICS_ADDRESS={address!r}: expected host:port, "
                                 "e.g. 0.0.0.0:9464")
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
            bind_address=address, counters_total_suffix=True)))
    except Exception as exc:  # the bridge reports a busy or invalid address as a plain error
        raise MetricsConfigError(f"SEBAYA_METRICS_ADDRESS={address}: cannot serve metrics "
                                 f"there ({exc})") from None
    metrics.install(runtime.metric_meter)
    return runtime


class UpdateRefusalMetrics(Interceptor):
    """Counts updates refused by a workflow's validator, by update name and error type.

    Validators do not run on replay and a refused update never reaches history, so each
    refusal is counted once; the workflow metric meter adds namespace, task queue and
    workflow type.
    """

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _RefusalInbound


class _RefusalInbound(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        try:
            self.next.handle_update_validator(input)
        except Exception as exc:
            error_type = exc.type if isinstance(exc, ApplicationError) and exc.type else (
                type(exc).__name__)
            metrics.update_refusals_counter(workflow.metric_meter()).add(
                1, {"update": input.update, "error_type": error_type})
            raise


async def refresh_store_gauges(pool: asyncpg.Pool, *, now: datetime | None = None) -> None:
    """Read deliveries by status and the projector's lag from Postgres into the gauges.

    Lag counts every event after the projector's checkpoint, including those still above the
    global read horizon (committed by a transaction that started before an older one still
    open): the read models do not show them yet either.
    """
    checkpoint = (await projection_status(pool, DEFAULT_NAME)).checkpoint
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
        behind = await conn.fetchrow(
            "SELECT count(*) AS n, min(recorded_at) AS oldest FROM events "
            "WHERE (tx_id, global_position) > ($1::xid8, $2::bigint)",
            checkpoint[0], checkpoint[1])
    for row in rows:
        metrics.deliveries(row["status"], row["n"])
    oldest = behind["oldest"]
    lag = ((now or datetime.now(UTC)) - oldest).total_seconds() if oldest else 0.0
    metrics.projector_lag(DEFAULT_NAME, max(lag, 0.0), behind["n"])


async def run_store_gauges(pool: asyncpg.Pool, stop: asyncio.Event,
                           interval: float = GAUGE_INTERVAL) -> None:
    """Refresh the Postgres-derived gauges every ``interval`` seconds until ``stop``."""
    while not stop.is_set():
        try:
            await refresh_store_gauges(pool)
        except (OSError, asyncpg.PostgresError) as exc:
            # Metrics must never take the worker down; the stale gauge is itself a signal.
            log.warning("could not refresh store gauges", error=str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
