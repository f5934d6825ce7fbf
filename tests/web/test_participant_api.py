"""Participant API end to end on the real Temporal dev server and Postgres: every action,
idempotency, a race between mentor and mentee, refusals as problem details, 503 when no
worker answers."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from domain.ids import pairing_stream
from tests.web.conftest import WebEnv, web_env_for
from tests.workflows.harness import HOUR, advance_to, started_state, store_for

pytestmark = pytest.mark.temporal

GOALS_MENTEE = [{"goal_id": "it-1", "title": "Menguasai SQL dasar",
                 "success_measure": "membuat laporan sendiri"}]
GOALS_MENTOR = [{"goal_id": "lead-1", "title": "Belajar melatih orang",
                 "success_measure": "umpan balik mentee"}]


def meeting(no: int, **extra: Any) -> dict[str, Any]:
    return {"meeting_no": no, "held": True, "topics": ["keterampilan IT"], **extra}


async def types_of(web: WebEnv, pairing_id: str) -> list[str]:
    return [r.type for r in await store_for(web.pool).read_stream(pairing_stream(pairing_id))]


async def test_every_action_end_to_end(web: WebEnv) -> None:
    pid, handle = await web.pairing()
    mentee, mentor = await web.participant("E001"), await web.participant("M001")
    mine = (await mentee.get("/api/v1/me/pairings")).json()
    assert [p["pairing_id"] for p in mine] == [pid]
    assert mine[0]["my_side"] == "mentee" and mine[0]["partner_id"] == "M001"

    view = (await mentee.get(f"/api/v1/pairings/{pid}")).json()
    assert view["phase"] == "goal_setting"
    assert view["partner"] == {"employee_id": "M001", "side": "mentor",
                               "name": "Mentor M001", "email": "m001@example.co.id"}
    assert "set_goals" in view["allowed_actions"]
    assert "log_meeting" not in view["allowed_actions"]

    state = await started_state(handle)
    await advance_to(web.env, handle, state.started_at + HOUR)
    r = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": GOALS_MENTEE})
    assert r.status_code == 200, r.text
    assert r.json()["events"] == ["GoalsSet"]
    r = await mentor.put(f"/api/v1/pairings/{pid}/goals", json={"goals": GOALS_MENTOR})
    assert r.status_code == 200, r.text
    assert r.json()["phase"] == "active"

    view = (await mentee.get(f"/api/v1/pairings/{pid}")).json()
    assert view["my_goals"][0]["goal_id"] == "it-1"
    assert view["partner_goals"][0]["goal_id"] == "lead-1"
    first = view["next_meeting"]
    assert first["meeting_no"] == 1
    assert {"log_meeting", "reschedule_meeting"} <= set(view["allowed_actions"])

    # Move meeting 1 a day later, then log it as held an hour after the new time.
    from datetime import datetime

    moved = datetime.fromisoformat(first["scheduled_at"]) + timedelta(days=1)
    r = await mentor.post(f"/api/v1/pairings/{pid}/meetings/1/reschedule",
                          json={"new_time": moved.isoformat()})
    assert r.status_code == 200, r.text
    await advance_to(web.env, handle, moved + HOUR)
    r = await mentee.post(f"/api/v1/pairings/{pid}/meetings",
                          json=meeting(1, minutes=45, goal_progress={"it-1": 20}))
    assert r.status_code == 200, r.text
    assert r.json()["events"][0] == "MeetingHeld"
    view = (await mentee.get(f"/api/v1/pairings/{pid}")).json()
    assert view["meetings_held"] == 1
    assert view["my_goals"][0]["progress"] == 20
    assert view["recent_meetings"][0]["minutes"] == 45
    assert [i["type"] for i in view["timeline"]].count("MeetingHeld") == 1
    held = next(i for i in view["timeline"] if i["type"] == "MeetingHeld")
    assert held["by"] == "me"

    # Meeting 2 was missed: the mentor says so once its time has passed.
    second = view["next_meeting"]
    await advance_to(web.env, handle, datetime.fromisoformat(second["scheduled_at"]) + HOUR)
    r = await mentor.post(f"/api/v1/pairings/{pid}/meetings",
                          json={"meeting_no": second["meeting_no"], "held": False})
    assert r.status_code == 200, r.text
    assert "MeetingMissed" in r.json()["events"]

    # Mid-point review: both sides, private answers stay private.
    await advance_to(web.env, handle, state.started_at + timedelta(days=91) + HOUR)
    view = (await mentee.get(f"/api/v1/pairings/{pid}")).json()
    assert "submit_midpoint_review" in view["allowed_actions"]
    r = await mentee.post(f"/api/v1/pairings/{pid}/midpoint-review",
                          json={"satisfaction": 2, "wants_to_continue": True,
                                "goal_progress": {"it-1": 50}})
    assert r.status_code == 200, r.text
    r = await mentee.post(f"/api/v1/pairings/{pid}/midpoint-review",
                          json={"satisfaction": 2, "wants_to_continue": True})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "already_submitted"
    partner_view = (await mentor.get(f"/api/v1/pairings/{pid}")).json()
    assert partner_view["midpoint_review"]["submitted_by_partner"] is True
    assert "satisfaction" not in str(partner_view)
    r = await mentor.post(f"/api/v1/pairings/{pid}/midpoint-review",
                          json={"satisfaction": 5, "wants_to_continue": True})
    assert r.status_code == 200, r.text

    # Final evaluation once the program has ended: the second one completes the pairing.
    await advance_to(web.env, handle, state.started_at + timedelta(days=182) + HOUR)
    for who, rating in ((mentee, 4), (mentor, 5)):
        r = await who.post(f"/api/v1/pairings/{pid}/final-evaluation", json={
            "relationship_rating": rating, "program_rating": 4, "learned": "Banyak hal",
            "would_recommend": True, "goal_attainment": {"it-1": 80}})
        assert r.status_code == 200, r.text
    assert r.json()["phase"] == "completed"
    view = (await mentee.get(f"/api/v1/pairings/{pid}")).json()
    assert view["phase"] == "completed" and view["allowed_actions"] == []
    r = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": GOALS_MENTEE})
    assert r.status_code == 409


async def test_exit_reason_is_private_to_the_one_who_asked(web: WebEnv) -> None:
    pid, _ = await web.pairing(mentor="M002", mentee="E002")
    mentee, mentor = await web.participant("E002"), await web.participant("M002")
    r = await mentee.post(f"/api/v1/pairings/{pid}/exit", json={"reason": "not_a_fit"})
    assert r.status_code == 200, r.text
    assert r.json()["phase"] == "exited"
    mine = (await mentee.get(f"/api/v1/pairings/{pid}")).json()["exit"]
    theirs = (await mentor.get(f"/api/v1/pairings/{pid}")).json()
    assert mine["initiated_by"] == "me" and mine["reason"] == "not_a_fit"
    assert theirs["exit"]["initiated_by"] == "partner" and theirs["exit"]["reason"] is None
    assert "not_a_fit" not in str(theirs)


async def test_same_idempotency_key_twice_records_once(web: WebEnv) -> None:
    pid, _ = await web.pairing(mentor="M003", mentee="E003")
    mentee = await web.participant("E003")
    headers = {"Idempotency-Key": "goals-attempt-1"}
    first = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": GOALS_MENTEE},
                             headers=headers)
    again = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": GOALS_MENTEE},
                             headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert (await types_of(web, pid)).count("GoalsSet") == 1
    # A new key is a new action: a revision.
    third = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": GOALS_MENTEE},
                             headers={"Idempotency-Key": "goals-attempt-2"})
    assert third.status_code == 200
    assert (await types_of(web, pid)).count("GoalsSet") == 2


async def test_mentor_and_mentee_log_the_same_meeting_at_once(web: WebEnv) -> None:
    pid, handle = await web.pairing(mentor="M004", mentee="E004")
    mentee, mentor = await web.participant("E004"), await web.participant("M004")
    state = await started_state(handle)
    await advance_to(web.env, handle, state.started_at + HOUR)
    for who, goals in ((mentee, GOALS_MENTEE), (mentor, GOALS_MENTOR)):
        assert (await who.put(f"/api/v1/pairings/{pid}/goals",
                              json={"goals": goals})).status_code == 200
    view = (await mentee.get(f"/api/v1/pairings/{pid}")).json()
    from datetime import datetime

    await advance_to(web.env, handle,
                     datetime.fromisoformat(view["next_meeting"]["scheduled_at"]) + HOUR)
    answers = await asyncio.gather(
        mentee.post(f"/api/v1/pairings/{pid}/meetings", json=meeting(1)),
        mentor.post(f"/api/v1/pairings/{pid}/meetings", json=meeting(1)))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "already_submitted"
    assert refused["type"].endswith("/already_submitted")
    assert (await types_of(web, pid)).count("MeetingHeld") == 1


async def test_refusals_are_problem_details(web: WebEnv) -> None:
    pid, _ = await web.pairing(mentor="M005", mentee="E005")
    mentee = await web.participant("E005")
    stranger = await web.participant("E999")
    # 409: well formed, not allowed now.
    r = await mentee.post(f"/api/v1/pairings/{pid}/meetings", json=meeting(1))
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "goals_required_first" and body["status"] == 409
    assert body["title"] and body["detail"]
    # 422: invalid input, from the domain (field named) and from the schema.
    r = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": [
        GOALS_MENTEE[0], GOALS_MENTEE[0]]})
    assert r.status_code == 422 and r.json()["code"] == "invalid_command"
    assert r.json()["field"] == "goals"
    r = await mentee.post(f"/api/v1/pairings/{pid}/midpoint-review",
                          json={"satisfaction": 9, "wants_to_continue": True})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    # 404: unknown pairing, and someone else's pairing looks the same.
    for who, target in ((mentee, "no-such-pairing"), (stranger, pid)):
        r = await who.get(f"/api/v1/pairings/{target}")
        assert r.status_code == 404 and r.json()["code"] == "pairing_not_found"
        r = await who.put(f"/api/v1/pairings/{target}/goals", json={"goals": GOALS_MENTEE})
        assert r.status_code == 404 and r.json()["code"] == "pairing_not_found"
    # A NUL character cannot be stored: refused at the door, the pairing keeps working.
    r = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": [
        {**GOALS_MENTEE[0], "title": "SQL\u0000dasar"}]})
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
    assert (await mentee.get("/api/v1/pairings/bad%00id")).status_code == 422
    assert (await types_of(web, pid)).count("GoalsSet") == 0
    r = await mentee.put(f"/api/v1/pairings/{pid}/goals", json={"goals": GOALS_MENTEE})
    assert r.status_code == 200, r.text


async def test_no_worker_means_503_within_a_bounded_time(temporal_env: Any, db_pool: Any,
                                                         task_queue: str) -> None:
    from tests.workflows.harness import start_pairing

    async with web_env_for(temporal_env, db_pool, task_queue, temporal_timeout_s=1.5) as web:
        pid, _ = await web.pairing(mentor="M006", mentee="E006")
    # The worker is gone now; a pairing on a queue nobody polls cannot answer either.
    orphan = await start_pairing(temporal_env.client, f"{task_queue}-nobody",
                                 mentor="M007", mentee="E007")
    mentee = await web.participant("E006")
    for target in (pid, orphan.id.removeprefix("pairing-")):
        started = time.monotonic()
        r = await mentee.put(f"/api/v1/pairings/{target}/goals", json={"goals": GOALS_MENTEE})
        elapsed = time.monotonic() - started
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "unavailable"
        assert elapsed < 5, elapsed


async def test_temporal_down_means_503_within_a_bounded_time(db_pool: Any) -> None:
    """A Temporal server that went away: writes answer 503 in bounded time, readiness says
    which dependency is missing."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from delivery.channels import LogChannel
    from sebaya.bootstrap import build_registry
    from sebaya.settings import temporal_cli_path
    from tests.web.conftest import BASE_URL, web_settings
    from web import auth
    from web.app import create_app

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli_path()),
        dev_server_extra_args=["--log-level", "error"],
        data_converter=pydantic_data_converter)
    client = env.client
    await env.shutdown()
    settings = web_settings("tq-gone", temporal_timeout_s=1.5)
    app = create_app(pool=db_pool, client=client, registry=build_registry(),
                     settings=settings, channel=LogChannel())
    session = await auth.create_session(db_pool, "participant", "E800", days=1)
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                                 headers={"Cookie": f"sebaya_session={session}",
                                          "X-CSRF-Token": auth.csrf_token(
                                              settings.secret_key, session)}) as http:
        started = time.monotonic()
        r = await http.put("/api/v1/pairings/T-gone/goals", json={"goals": GOALS_MENTEE})
        assert r.status_code == 503, r.text
        assert time.monotonic() - started < 5
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"] == "ok"
        assert ready.json()["checks"]["temporal"].startswith("unavailable")
