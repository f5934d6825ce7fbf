"""Sending updates and queries to workflows from request handlers, with a bounded wait.

Every refusal and every failure to reach Temporal becomes a :class:`~web.problems.Problem`
here, so routers only say which update to send.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    RPCError,
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCStatusCode

from web.problems import Problem, unavailable

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_UNAVAILABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED,
                RPCStatusCode.CANCELLED, RPCStatusCode.RESOURCE_EXHAUSTED)


def update_id(scope: str, idempotency_key: str | None) -> str:
    """The update id: the client's ``Idempotency-Key`` scoped to the caller (so two people
    who happen to pick the same key never receive each other's result), else a fresh one."""
    if idempotency_key is None:
        return f"{scope}/{uuid.uuid4()}"
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        raise Problem(422, "invalid_idempotency_key",
                      "Idempotency-Key must be 1-200 visible ASCII characters",
                      field="Idempotency-Key")
    return f"{scope}/{idempotency_key}"


def _refusal(exc: BaseException) -> Problem | None:
    cause = exc
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__  # type: ignore[assignment]
    if not isinstance(cause, ApplicationError) or not cause.type:
        return None
    details = cause.details[0] if cause.details else {}
    field = details.get("field") if isinstance(details, dict) else None
    message = cause.message
    if field and message.startswith(f"{field}: "):
        message = message[len(field) + 2:]
    return Problem.domain(cause.type, message, field)


def _rpc_problem(exc: RPCError, what: str, ident: str) -> Problem:
    if exc.status == RPCStatusCode.NOT_FOUND:
        if "already completed" in exc.message or "completed" in exc.message.lower():
            return Problem(409, "pairing_closed" if what == "pairing" else f"{what}_closed",
                           f"the {what} {ident!r} has ended")
        return Problem(404, f"{what}_not_found", f"no {what} {ident!r}")
    if exc.status in _UNAVAILABLE:
        return unavailable("the workflow service did not answer in time; try again shortly")
    return unavailable(f"the workflow service refused the call: {exc.message}")


async def execute_update(client: Client, workflow_id: str, update: str, arg: Any, *,
                         result_type: type, update_id: str, timeout_s: float,
                         what: str, ident: str) -> Any:
    """Send one update and wait for its result, at most ``timeout_s`` seconds."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        async with asyncio.timeout(timeout_s + 1):
            return await handle.execute_update(
                update, arg, id=update_id, result_type=result_type,
                rpc_timeout=timedelta(seconds=timeout_s))
    except WorkflowUpdateFailedError as exc:
        problem = _refusal(exc)
        if problem is None:
            raise
        raise problem from exc
    except RPCTimeoutOrCancelledError as exc:
        raise unavailable("the workflow worker did not answer in time; your action may "
                          "still be applied: retry with the same Idempotency-Key") from exc
    except TimeoutError as exc:
        raise unavailable("the workflow service did not answer in time; retry with the "
                          "same Idempotency-Key") from exc
    except RPCError as exc:
        raise _rpc_problem(exc, what, ident) from exc


async def query(client: Client, workflow_id: str, name: str, *, result_type: type,
                timeout_s: float, what: str, ident: str) -> Any:
    handle = client.get_workflow_handle(workflow_id)
    try:
        async with asyncio.timeout(timeout_s + 1):
            return await handle.query(name, result_type=result_type,
                                      rpc_timeout=timedelta(seconds=timeout_s))
    except WorkflowQueryFailedError as exc:
        raise unavailable(f"the {what} could not be queried: {exc}") from exc
    except (RPCTimeoutOrCancelledError, TimeoutError) as exc:
        raise unavailable("the workflow service did not answer in time") from exc
    except RPCError as exc:
        raise _rpc_problem(exc, what, ident) from exc
