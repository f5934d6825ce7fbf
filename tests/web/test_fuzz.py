"""Every API operation fuzzed from the published OpenAPI schema (schemathesis), over real
HTTP, as the role that may call it, against a real pairing and cohort as well as random ids:
no 5xx, no answer that breaks its own schema, no undeclared status code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import WebEnv, free_port, serving
from web import auth

pytestmark = pytest.mark.temporal
EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
READINESS_CHECKS = [response_schema_conformance, status_code_conformance]


def runner(operation: Any, base: str, headers: dict[str, str], real: dict[str, str] | None
           ) -> Any:
    """A hypothesis test for one operation; ``real`` replaces generated path ids."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        for name, value in (real or {}).items():
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = value
        response = case.call(base_url=base, headers=headers, timeout=30)
        # A readiness probe answers 503 by contract when a dependency is slow or down (it is
        # documented so); the schema checks still apply to it.
        checks = READINESS_CHECKS if operation.path == "/readyz" else CHECKS
        case.validate_response(response, checks=checks)

    return run


def fuzz(base: str, headers_for: dict[str, dict[str, str]], real: dict[str, str]) -> list[str]:
    """Runs in a thread (schemathesis calls are blocking); returns the failures."""
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        tags = set(operation.tags or ())
        role = next((r for r in ("participant", "coordinator", "auditor") if r in tags),
                    "participant" if "sign-in" in tags else None)
        headers = headers_for.get(role or "", {})
        for ids in (None, real):
            try:
                runner(operation, base, headers, ids)()
            except Exception as exc:
                failures.append(f"{operation.label}: {exc}")
    return failures


@pytest.mark.slow
async def test_every_operation_survives_fuzzing(web: WebEnv) -> None:
    pid, _ = await web.pairing(mentor="M500", mentee="E500")
    session = await auth.create_session(web.pool, "participant", "E500", days=1)
    _, coordinator = await auth.create_api_token(web.pool, "coordinator", "fuzz")
    _, auditor = await auth.create_api_token(web.pool, "auditor", "fuzz")
    headers_for = {
        "participant": {"Cookie": f"sebaya_session={session}",
                        "X-CSRF-Token": auth.csrf_token(web.settings.secret_key, session)},
        "coordinator": {"Authorization": f"Bearer {coordinator}"},
        "auditor": {"Authorization": f"Bearer {auditor}"},
    }
    real = {"pairing_id": pid, "cohort_id": "C-test", "meeting_no": "1"}
    async with serving(web.app, free_port()) as base:
        failures = await asyncio.to_thread(fuzz, base, headers_for, real)
    assert not failures, "\n\n".join(failures)
