"""Participant pages over HTTP (no JavaScript): every action's form renders with labels, a
refused post re-renders the form with the domain's message (status 409/422) and keeps the
input, an accepted post redirects home, where the result shows; the coordinator's pages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.conftest import WebEnv
from tests.workflows.harness import HOUR, advance_to, started_state
from web import auth

pytestmark = pytest.mark.temporal


async def browser_for(web: WebEnv, employee: str) -> tuple[Any, str]:
    session = await auth.create_session(web.pool, "participant", employee, days=1)
    return (web.http(cookies={"sebaya_session": session}),
            auth.csrf_token(web.settings.secret_key, session))


async def test_every_form_renders_and_refusals_come_back_on_the_form(web: WebEnv) -> None:
    pid, handle = await web.pairing(mentor="M600", mentee="E600")
    browser, csrf = await browser_for(web, "E600")
    home = await browser.get("/")
    assert home.status_code == 200 and '<html lang="id">' in home.text
    assert "Mentor M600" in home.text and "Tetapkan atau ubah tujuan" in home.text
    for action in ("set_goals", "log_meeting", "reschedule_meeting", "submit_midpoint_review",
                   "request_exit", "submit_final_evaluation"):
        page = await browser.get(f"/pairings/{pid}/{action}", params={"lang": "en"})
        assert page.status_code == 200, action
        ids = set(re.findall(r'<label for="([^"]+)"', page.text))
        inputs = set(re.findall(r'id="([^"]+)" name=', page.text))
        assert inputs <= ids | {"problem"}, (action, inputs - ids)
        assert 'name="csrf_token"' in page.text

    # The language asked for is remembered; go back to Indonesian.
    assert '<html lang="en">' in (await browser.get("/")).text
    assert '<html lang="id">' in (await browser.get("/", params={"lang": "id"})).text
    # Refused: meetings need both sides' goals first (409), with the explanation in Indonesian.
    r = await browser.post(f"/pairings/{pid}/log_meeting", data={
        "csrf_token": csrf, "meeting_no": "1", "held": "yes", "minutes": "50",
        "topics": "karier"})
    assert r.status_code == 409
    assert "Kedua pihak perlu menetapkan tujuan" in r.text
    assert 'value="50"' in r.text  # what was typed is kept
    # Invalid (422): a goal title that is too short, named by field.
    r = await browser.post(f"/pairings/{pid}/set_goals", data={
        "csrf_token": csrf, "title_1": "ab", "measure_1": "laporan sendiri"})
    assert r.status_code == 422 and "goals[1].title" in r.text
    # Accepted: back home, the goal is there.
    state = await started_state(handle)
    await advance_to(web.env, handle, state.started_at + HOUR)
    r = await browser.post(f"/pairings/{pid}/set_goals", data={
        "csrf_token": csrf, "title_1": "Menguasai SQL", "measure_1": "laporan sendiri",
        "target_1": ""})
    assert r.status_code == 303 and r.headers["location"] == f"/pairings/{pid}?done=set_goals"
    page = await browser.get(r.headers["location"])
    assert "Tersimpan" in page.text and "Menguasai SQL" in page.text
    # The same rendered form posted twice (same idempotency key) records once.
    form = {"csrf_token": csrf, "title_1": "Menguasai SQL lanjut",
            "measure_1": "laporan sendiri", "idempotency_key": "form-123"}
    for _ in range(2):
        assert (await browser.post(f"/pairings/{pid}/set_goals", data=form)).status_code == 303
    types = [r["type"] for r in await web.pool.fetch(
        "SELECT type FROM events WHERE stream_id = $1", f"pairing-{pid}")]
    assert types.count("GoalsSet") == 2
    # Exit through the form: the partner's page shows it ended, without the reason.
    r = await browser.post(f"/pairings/{pid}/request_exit",
                           data={"csrf_token": csrf, "reason": "workload"})
    assert r.status_code == 303
    partner, _ = await browser_for(web, "M600")
    page = await partner.get(f"/pairings/{pid}", params={"lang": "en"})
    assert "This pairing has ended." in page.text and "Workload" not in page.text
    mine = await browser.get(f"/pairings/{pid}", params={"lang": "en"})
    assert "Workload" in mine.text


async def test_other_peoples_pairings_and_unknown_actions_are_not_found(web: WebEnv) -> None:
    pid, _ = await web.pairing(mentor="M601", mentee="E601")
    stranger, _ = await browser_for(web, "E699")
    assert (await stranger.get(f"/pairings/{pid}")).status_code == 404
    assert (await stranger.get(f"/pairings/{pid}/set_goals")).status_code == 404
    mentee, _ = await browser_for(web, "E601")
    assert (await mentee.get(f"/pairings/{pid}/delete_everything")).status_code == 404
    coordinator = await web.staff("coordinator")
    r = await coordinator.get("/cohorts")
    assert r.status_code == 200 and "<table>" in r.text
    assert (await coordinator.get("/cohorts/none")).status_code == 404
