"""Who may do what, generated from the route table: every route times every role (and no
credentials). A route added without an ``Allow`` rule fails here."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.web.conftest import WebEnv
from web.deps import rule_of

pytestmark = pytest.mark.temporal

IDENTITIES = (None, "participant", "coordinator", "auditor")


def concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: "1" if m.group(1) == "meeting_no" else "x", path)


def api_routes(app: Any) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute)]


async def test_every_route_states_who_may_call_it(web: WebEnv) -> None:
    missing = [f"{sorted(r.methods)} {r.path}" for r in api_routes(web.app)
               if rule_of(r.dependant) is None]
    assert not missing, f"routes without an Allow rule: {missing}"


async def test_matrix(web: WebEnv) -> None:
    async def client_for(who: str | None) -> Any:
        # A fresh credential per request: POST /sign-out ends the session it is sent with.
        if who is None:
            return web.http()
        if who == "participant":
            return await web.participant("E100")
        return await web.staff(who)  # type: ignore[arg-type]

    checked = 0
    for route in api_routes(web.app):
        rule = rule_of(route.dependant)
        assert rule is not None
        is_page = not route.path.startswith("/api/")
        for method in sorted(route.methods - {"HEAD"}):
            for who in IDENTITIES:
                client = await client_for(who)
                r = await client.request(method, concrete(route.path))
                where = f"{method} {route.path} as {who}: {r.status_code} {r.text[:200]}"
                if rule.public:
                    assert r.status_code not in (401, 403), where
                elif who is None:
                    expected = 303 if is_page else 401
                    assert r.status_code == expected, where
                    if is_page:
                        assert r.headers["location"] == "/sign-in", where
                elif who not in rule.roles:
                    assert r.status_code == 403, where
                else:
                    assert r.status_code not in (401, 403), where
                assert r.status_code < 500, where
                checked += 1
    assert checked > 100


async def test_auditor_never_writes_and_participant_never_reads_staff_data(
        web: WebEnv) -> None:
    writes = [r for r in api_routes(web.app) if r.path.startswith("/api/")
              and r.methods & {"POST", "PUT", "PATCH", "DELETE"}]
    for route in writes:
        rule = rule_of(route.dependant)
        assert rule is not None
        assert "auditor" not in rule.roles or rule.public, route.path
    for route in api_routes(web.app):
        if route.path.startswith(("/api/v1/cohorts", "/api/v1/audit")):
            rule = rule_of(route.dependant)
            assert rule is not None and "participant" not in rule.roles, route.path


async def test_revoked_token_and_revoked_session_are_refused(web: WebEnv) -> None:
    from web import auth

    token_id, token = await auth.create_api_token(web.pool, "auditor", "soon-revoked")
    client = web.http(headers={"Authorization": f"Bearer {token}"})
    assert (await client.get("/api/v1/audit/verify")).status_code == 200
    assert await auth.revoke_api_token(web.pool, token_id)
    r = await client.get("/api/v1/audit/verify")
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    forged = web.http(headers={"Authorization": "Bearer sby_00000000_forged"})
    assert (await forged.get("/api/v1/audit/verify")).status_code == 401

    session = await auth.create_session(web.pool, "participant", "E200", days=1)
    browser = web.http(cookies={"sebaya_session": session})
    assert (await browser.get("/api/v1/me/pairings")).status_code == 200
    await auth.revoke_session(web.pool, session)
    assert (await browser.get("/api/v1/me/pairings")).status_code == 401
    stored = await web.pool.fetchval("SELECT count(*) FROM web_sessions "
                                     "WHERE session_hash = $1", session)
    assert stored == 0, "the session id itself must never be stored"
