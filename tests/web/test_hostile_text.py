"""Every piece of text a person or a file can put into Sebaya reaches HTML escaped.

The sample cohort (examples/program.yaml + people.csv) is loaded with a script payload in
every text field a file carries (program name, objective, baseline source, topics, question
texts; names, departments, skills), started through the coordinator API, and its pairings are
then given hostile goals and meeting topics through the participant forms. Every HTML page a
coordinator or participant can open for it, and the HTML report, must show each payload as
text (escaped) and never as markup.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.ids import pairing_workflow_id
from sebaya import operations
from tests.web.conftest import WebEnv
from tests.web.test_staff_api import upload, wait_for_proposal
from tests.workflows.harness import advance_to, started_state
from web import auth

pytestmark = pytest.mark.temporal
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def payload(tag: str) -> str:
    """Breaks out of an attribute and of text: if either is unescaped, a script runs."""
    return f"\"'><script>alert('xss-{tag}')</script><img src=x onerror=alert('xss-{tag}')>"


# What must never appear in any page: the markup of a payload.
RAW = re.compile(r"<script>alert\('xss-|<img src=x onerror", re.IGNORECASE)


def hostile_program() -> bytes:
    program = yaml.safe_load((EXAMPLES / "program.yaml").read_text(encoding="utf-8"))
    program["name"] = "Program " + payload("program-name")
    program["objective"]["description"] += " " + payload("objective")
    program["baseline"]["source"] = payload("baseline-source")
    program["ground_rules"]["topics"].append(payload("topic"))
    program["approval"] = "manual"
    for question in program["questionnaire"]["questions"]:
        question["text"] = f"{question['text']} {payload('question-' + question['id'])}"
    return yaml.safe_dump(program, allow_unicode=True, sort_keys=False).encode()


def hostile_people() -> bytes:
    rows = list(csv.DictReader(io.StringIO((EXAMPLES / "people.csv").read_text("utf-8"))))
    for row in rows:
        eid = row["employee_id"]
        row["name"] = f"{row['name']} {payload('name-' + eid)}"
        row["department"] = f"{row['department']} {payload('dept')}"
        for column in ("skills_offered", "skills_wanted"):
            if row[column]:
                row[column] += ";" + payload("skill")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def shown_tags(page: str) -> set[str]:
    """The payloads a page shows as text (escaped as Jinja2/markupsafe or html.escape do)."""
    text = html.unescape(page)
    return set(re.findall(r"alert\('xss-([\w-]+)'\)</script>", text))


async def test_script_payloads_in_every_text_field_render_as_text(web: WebEnv) -> None:
    coordinator = await web.staff("coordinator")
    r = await coordinator.post("/api/v1/cohorts", **upload(
        hostile_program(), hostile_people(), cohort_id="xss"))
    assert r.status_code == 201, r.text
    proposal = await wait_for_proposal(coordinator, "xss")
    pages: dict[str, str] = {}

    async def page(name: str, client: Any, url: str, **params: str) -> str:
        answer = await client.get(url, params=params)
        assert answer.status_code == 200, (name, answer.status_code, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html"), name
        pages[name] = answer.text
        return answer.text

    await page("cohorts", coordinator, "/cohorts")
    await page("cohort with proposal", coordinator, "/cohorts/xss")
    r = await coordinator.post("/api/v1/cohorts/xss/approve", json={},
                               headers={"Idempotency-Key": "xss-approve"})
    assert r.status_code == 200, r.text
    launched = r.json()["launched"]

    cohort = web.client.get_workflow_handle("cohort-xss")
    state = await operations.cohort_state(web.client, "xss")
    await advance_to(web.env, cohort, state.starts_at + timedelta(minutes=1))
    for _ in range(600):
        state = await operations.cohort_state(web.client, "xss")
        if len(state.active) == launched:
            break
        await asyncio.sleep(0.1)  # real time: the worker launches the pairings
    pairing_id = sorted(state.active)[0]
    handle = web.client.get_workflow_handle(pairing_workflow_id(pairing_id))
    # Each workflow has its own virtual clock: the pairing begins on the program's start date.
    await advance_to(web.env, handle, state.starts_at + timedelta(minutes=2))
    pairing = await started_state(handle)
    await advance_to(web.env, handle, pairing.started_at + timedelta(hours=1))

    # Both sides set hostile goals through the forms; the mentee logs the first meeting
    # with the hostile topic the program offers.
    sides = {}
    for role, employee in (("mentor", pairing.mentor_id), ("mentee", pairing.mentee_id)):
        session = await auth.create_session(web.pool, "participant", employee, days=1)
        browser = web.http(cookies={"sebaya_session": session})
        csrf = auth.csrf_token(web.settings.secret_key, session)
        sides[role] = (browser, csrf)
        r = await browser.post(f"/pairings/{pairing_id}/set_goals", data={
            "csrf_token": csrf, "title_1": "Tujuan " + payload(f"goal-{role}"),
            "measure_1": "Ukuran " + payload(f"measure-{role}")})
        assert r.status_code == 303, r.text
    await advance_to(web.env, handle, pairing.started_at + timedelta(days=8))
    browser, csrf = sides["mentee"]
    log_form = await page("log meeting form", browser, f"/pairings/{pairing_id}/log_meeting")
    meeting_no = re.search(r'name="meeting_no" value="(\d+)"', log_form)
    assert meeting_no, log_form
    r = await browser.post(f"/pairings/{pairing_id}/log_meeting", data={
        "csrf_token": csrf, "meeting_no": meeting_no.group(1), "held": "yes", "minutes": "45",
        "topics": payload("topic")})
    assert r.status_code == 303, r.text
    # A refused form comes back with what was typed: escaped too.
    r = await browser.post(f"/pairings/{pairing_id}/set_goals", data={
        "csrf_token": csrf, "title_1": "ab", "measure_1": payload("typed-back")})
    assert r.status_code == 422
    pages["refused form"] = r.text

    await web.project()
    for role, (client, _) in sides.items():
        await page(f"{role} home", client, "/")
        await page(f"{role} pairing", client, f"/pairings/{pairing_id}")
        await page(f"{role} pairing (en)", client, f"/pairings/{pairing_id}", lang="en")
        for action in ("set_goals", "reschedule_meeting", "submit_midpoint_review",
                       "request_exit", "submit_final_evaluation"):
            await page(f"{role} {action}", client, f"/pairings/{pairing_id}/{action}")
    await page("cohort running", coordinator, "/cohorts/xss")
    await page("report page", coordinator, "/cohorts/xss/report")
    await page("report (API, html)", coordinator, "/api/v1/cohorts/xss/report", format="html")

    for name, text in pages.items():
        raw = RAW.search(text)
        where = "" if raw is None else text[max(0, raw.start() - 200):raw.end() + 80]
        assert raw is None, f"{name}: unescaped payload at {where!r}"
    shown = set().union(*(shown_tags(text) for text in pages.values()))
    # Each field that a page displays did reach the HTML (as text): the test saw it.
    mentor_name = f"name-{pairing.mentor_id}"
    expected = {"program-name", "topic", "goal-mentor", "goal-mentee", "measure-mentor",
                "measure-mentee", "typed-back", mentor_name, "baseline-source"}
    assert expected <= shown, f"never shown: {sorted(expected - shown)}; shown: {sorted(shown)}"
    assert len(proposal["pairs"]) >= launched
