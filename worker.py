"""The Sebaya Temporal worker: ``python -m worker`` (or ``python worker.py``).

Wiring only. Workflows come from :data:`workflows.ALL_WORKFLOWS`, activities from
:func:`activities.build_activities` bound to the infrastructure the composition root
(:mod:`sebaya.bootstrap`) opens: services from the environment first, then the embedded stack.

SIGTERM or SIGINT starts a graceful shutdown: polling stops, running activities get
:data:`GRACEFUL_SHUTDOWN` to finish, then the process exits 0. A second signal kills it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from sebaya.bootstrap import open_infrastructure
from sebaya.codec import PayloadKeyError, data_converter
from sebaya.logging import configure_logging, get_logger
from sebaya.metrics import (
    MetricsConfigError,
    UpdateRefusalMetrics,
    metrics_runtime,
    run_store_gauges,
)
from sebaya.runtime import ServicesNotConfigured
from sebaya.settings import Settings, get_settings

__all__ = [
    "GRACEFUL_SHUTDOWN",
    "ActivityContextInterceptor",
    "build_worker",
    "main",
    "run_worker",
    "serve",
]

# How long running activities may keep going after a shutdown signal before they are cancelled.
# Compose's stop_grace_period and `sebaya dev down`'s wait are longer than this on purpose.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
# The sandbox re-imports workflow modules for every workflow run; pydantic is deterministic
# and heavy, so it is passed through (as Temporal's pydantic guide recommends) instead of
# being rebuilt per run, which under load pushed single activations past the 2 s deadlock
# detector.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "pydantic", "pydantic_core", "annotated_types", "pydantic_settings"
    )
)

# In Compose the worker may start before Temporal or Postgres accepts connections.
CONNECT_TIMEOUT = 60.0

log = get_logger("sebaya.worker")


class ActivityContextInterceptor(Interceptor):
    """Binds the activity's identity into structlog's context while it runs.

    Every log line an activity (or anything it calls) writes then says which workflow run and
    which activity attempt it belongs to. Workflows log through ``workflow.logger`` instead,
    which the SDK already annotates and silences during replay.
    """

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityContextInbound(next)


class _ActivityContextInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        tokens = structlog.contextvars.bind_contextvars(
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity_type=info.activity_type,
            activity_id=info.activity_id,
            attempt=info.attempt,
        )
        try:
            return await self.next.execute_activity(input)
        finally:
            # Restore what was bound before (not clear everything): the worker's own context,
            # such as the task queue, stays for whatever this task logs next.
            structlog.contextvars.reset_contextvars(**tokens)


def _is_async(fn: Callable[..., Any]) -> bool:
    # Also true for instances of classes with an ``async def __call__``, as the SDK accepts them.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def build_worker(
    client: Client,
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    *,
    workflows: Sequence[type] | None = None,
    activity_executor: ThreadPoolExecutor | None = None,
) -> Worker:
    """A worker on ``settings.task_queue``; ``workflows`` defaults to all of Sebaya's.

    The data converter is the client's (``connect_temporal`` gives it the pydantic one).
    Synchronous activities need ``activity_executor``.
    """
    if workflows is None:
        from workflows import ALL_WORKFLOWS

        workflows = ALL_WORKFLOWS
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflow_runner=WORKFLOW_RUNNER,
        workflows=list(workflows),
        activities=list(activities),
        activity_executor=activity_executor,
        interceptors=[ActivityContextInterceptor(), UpdateRefusalMetrics()],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_cached_workflows=settings.worker_max_cached_workflows,
    )


async def run_worker(
    client: Client,
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    *,
    workflows: Sequence[type] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a worker until ``stop`` is set (then shut down gracefully) or the worker fails.

    Returns normally after a requested shutdown; raises if the worker died on its own.
    """
    executor = None
    if not all(_is_async(fn) for fn in activities):
        executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sebaya-activity")
    worker = build_worker(
        client, settings, activities, workflows=workflows, activity_executor=executor
    )
    if stop is None:
        stop = asyncio.Event()  # nobody can set it: run until cancelled or the worker fails
    run = asyncio.create_task(worker.run(), name="temporal-worker")
    stopping = asyncio.create_task(stop.wait(), name="worker-stop")
    try:
        done, _ = await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if run in done:
            run.result()  # the worker ended on its own: re-raise its fatal error
            return
        log.info("shutting down worker", grace_seconds=GRACEFUL_SHUTDOWN.total_seconds())
    finally:
        stopping.cancel()
        if not run.done():
            # Reached on a stop request and also when our caller cancels us. shutdown() stops
            # polling, gives running activities the grace period to finish and waits until their
            # results reached the server; only then does run() return.
            await worker.shutdown()
            await run
            log.info("worker stopped")
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def request_stop(signum: signal.Signals) -> None:
        log.info("signal received, stopping gracefully", signal=signum.name)
        stop.set()
        # Back to the default action: a second Ctrl-C / SIGTERM ends the process at once.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)


async def serve(
    settings: Settings | None = None,
    *,
    workflows: Sequence[type] | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
) -> None:
    """The worker process: log setup, connections, signal handling, run until told to stop."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    # Configuration errors first, so they are not retried like an unreachable service.
    data_converter(settings.payload_keys)
    # Before connecting: the client's runtime carries the Prometheus exporter.
    runtime = metrics_runtime(settings.metrics_address) if settings.metrics_address else None
    async with open_infrastructure(
        settings, connect_timeout=CONNECT_TIMEOUT, runtime=runtime
    ) as infra:
        structlog.contextvars.bind_contextvars(
            task_queue=infra.services.task_queue, namespace=infra.services.namespace
        )
        if activities is None:
            from activities import build_activities
            from sebaya.roster_feed import RosterFeedActivities

            activities = build_activities(
                infra.pool, infra.registry, infra.notifier, client=infra.temporal
            )
            # The scheduled roster sync reads HR exports: entry-point code (intake, operations).
            activities.append(RosterFeedActivities(infra.pool, infra.temporal).sync_from_source)
        gauges = (
            asyncio.create_task(run_store_gauges(infra.pool, stop), name="store-gauges")
            if runtime is not None else None
        )
        try:
            log.info("worker starting", temporal=infra.services.temporal_address,
                     metrics=settings.metrics_address)
            await run_worker(infra.temporal, settings, activities, workflows=workflows,
                             stop=stop)
        finally:
            if gauges is not None:
                gauges.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gauges


def main() -> None:
    try:
        asyncio.run(serve())
    except ServicesNotConfigured as exc:
        # A configuration problem, not a crash: say what to do, without a traceback.
        log.error("no services to connect to", reason=str(exc))
        sys.exit(2)
    except (MetricsConfigError, PayloadKeyError) as exc:
        log.error("invalid configuration", reason=str(exc))
        sys.exit(2)


if __name__ == "__main__":
    main()
