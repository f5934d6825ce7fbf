"""Liveness (the process answers) and readiness (Postgres and Temporal answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from web.deps import PUBLIC, ServicesDep

router = APIRouter(tags=["health"], dependencies=[Depends(PUBLIC)])

READY_TIMEOUT_S = 3.0


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Postgres and Temporal are reachable",
            responses={503: {"description": "a dependency does not answer"}})
async def readyz(svc: ServicesDep) -> Any:
    async def postgres() -> None:
        await svc.pool.fetchval("SELECT 1")

    async def temporal() -> None:
        await svc.client.service_client.check_health()

    async def worker() -> None:
        # Updates need a worker polling the task queue; without one they would only wait.
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        answer = await svc.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=svc.client.namespace,
                task_queue=TaskQueue(name=svc.settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        if not answer.pollers:
            raise LookupError("no worker polls the task queue")

    checks: dict[str, str] = {}
    for name, probe in (("postgres", postgres), ("temporal", temporal), ("worker", worker)):
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)
