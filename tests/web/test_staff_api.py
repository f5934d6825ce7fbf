"""Coordinator and auditor API on the real stack: upload a cohort (and see file/line/column
problems for broken files), review and approve the proposal with a drop, status, departure,
report in three formats; an auditor's history, replay, verification and bundle."""

from __future__ import annotations

import asyncio
import io
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.ids import pairing_workflow_id
from sebaya import operations
from tests.web.conftest import WebEnv
from tests.workflows.harness import advance_to, started_state

pytestmark = pytest.mark.temporal
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def manual_program() -> bytes:
    text = (EXAMPLES / "program.yaml").read_text(encoding="utf-8")
    assert "approval: auto" in text
    return text.replace("approval: auto", "approval: manual").encode()


def upload(program: bytes, people: bytes, **form: str) -> dict[str, Any]:
    return {"files": {"program": ("program.yaml", program, "application/yaml"),
                      "people": ("people.csv", people, "text/csv")},
            "data": form}


async def wait_for_proposal(coordinator: Any, cohort_id: str) -> dict[str, Any]:
    for _ in range(600):
        r = await coordinator.get(f"/api/v1/cohorts/{cohort_id}/proposal")
        assert r.status_code == 200, r.text
        if r.json()["pairs"]:
            return r.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)  # real time: the matching activity runs on the worker
    raise AssertionError("no proposal")


async def start_manual_cohort(web: WebEnv, coordinator: Any, cohort_id: str) -> dict[str, Any]:
    people = (EXAMPLES / "people.csv").read_bytes()
    r = await coordinator.post("/api/v1/cohorts",
                               **upload(manual_program(), people, cohort_id=cohort_id))
    assert r.status_code == 201, r.text
    assert r.json()["cohort_id"] == cohort_id
    return await wait_for_proposal(coordinator, cohort_id)


async def test_broken_files_come_back_as_file_line_column_problems(web: WebEnv) -> None:
    coordinator = await web.staff("coordinator")
    r = await coordinator.post("/api/v1/cohorts", **upload(
        (EXAMPLES / "broken" / "program.yaml").read_bytes(),
        (EXAMPLES / "broken" / "people.csv").read_bytes()))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_input"
    files = {p["file"] for p in body["problems"]}
    assert files <= {"program.yaml", "people.csv"} and files
    assert all(set(p) == {"file", "line", "column", "message"} for p in body["problems"])
    assert any(p["line"] for p in body["problems"])
    assert await web.pool.fetchval("SELECT count(*) FROM cohorts") == 0


async def test_coordinator_runs_a_cohort(web: WebEnv) -> None:
    coordinator = await web.staff("coordinator")
    proposal = await start_manual_cohort(web, coordinator, "web-c1")
    pairs = proposal["pairs"]
    assert proposal["approval"] == "manual" and len(pairs) > 2
    assert pairs[0]["mentor_name"] and pairs[0]["explanation"]
    again = await coordinator.post("/api/v1/cohorts", **upload(
        manual_program(), (EXAMPLES / "people.csv").read_bytes(), cohort_id="web-c1"))
    assert again.status_code == 409

    dropped = pairs[0]
    body = {"drop": [[dropped["mentor_id"], dropped["mentee_id"]]]}
    r = await coordinator.post("/api/v1/cohorts/web-c1/approve", json=body,
                               headers={"Idempotency-Key": "approve-1"})
    assert r.status_code == 200, r.text
    launched = r.json()["launched"]
    assert launched == len(pairs) - 1
    replay = await coordinator.post("/api/v1/cohorts/web-c1/approve", json=body,
                                    headers={"Idempotency-Key": "approve-1"})
    assert replay.json() == r.json()
    twice = await coordinator.post("/api/v1/cohorts/web-c1/approve", json={})
    assert twice.status_code in (409, 422), twice.text

    listed = (await coordinator.get("/api/v1/cohorts")).json()
    assert [c["cohort_id"] for c in listed] == ["web-c1"]
    # Pairings begin on the program's start date: move the cohort's clock there.
    cohort = web.client.get_workflow_handle("cohort-web-c1")
    state = await operations.cohort_state(web.client, "web-c1")
    await advance_to(web.env, cohort, state.starts_at + timedelta(minutes=1))
    for _ in range(300):
        overview = (await coordinator.get("/api/v1/cohorts/web-c1")).json()
        if overview["live"]["launched"] == launched:
            break
        await asyncio.sleep(0.1)  # real time: the worker launches the pairings
    assert overview["live"]["launched"] == launched
    await web.project()
    overview = (await coordinator.get("/api/v1/cohorts/web-c1")).json()
    assert overview["status"]["launched"] == launched

    state = await operations.cohort_state(web.client, "web-c1")
    pairing_id = sorted(state.active)[0]
    first = web.client.get_workflow_handle(pairing_workflow_id(pairing_id))
    await advance_to(web.env, first, state.starts_at + timedelta(minutes=2))
    leaving = (await started_state(first)).mentee_id
    r = await coordinator.post("/api/v1/cohorts/web-c1/departures",
                               json={"employee_id": leaving, "left_on": "2027-01-12"})
    assert r.status_code == 200, r.text
    assert r.json()["ended_pairings"] == [pairing_id]
    r = await coordinator.post("/api/v1/cohorts/web-c1/departures",
                               json={"employee_id": "NOBODY", "left_on": "2027-01-12"})
    assert r.status_code == 422, r.text

    await web.project()
    as_json = await coordinator.get("/api/v1/cohorts/web-c1/report")
    assert as_json.status_code == 200 and as_json.json()["cohort_id"] == "web-c1"
    as_csv = await coordinator.get("/api/v1/cohorts/web-c1/report", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv") and "," in as_csv.text
    as_html = await coordinator.get("/api/v1/cohorts/web-c1/report", params={"format": "html"})
    assert as_html.headers["content-type"].startswith("text/html")
    assert "<html" in as_html.text.lower()
    assert (await coordinator.get("/api/v1/cohorts/nope")).status_code == 404

    # The auditor reads the same record by ids, never names or e-mails.
    auditor = await web.staff("auditor")
    history = await auditor.get(f"/api/v1/audit/pairings/{pairing_id}/history")
    assert history.status_code == 200, history.text
    assert history.json()["timeline"][0]["type"] == "PairingMatched"
    names = await web.pool.fetch("SELECT name, email FROM participants")
    text = history.text
    assert not any(n["name"] in text or n["email"] in text for n in names)
    replayed = await auditor.get(f"/api/v1/audit/pairings/{pairing_id}/replay")
    assert replayed.status_code == 200 and replayed.json()["events_applied"] >= 1
    early = await auditor.get(f"/api/v1/audit/pairings/{pairing_id}/replay",
                              params={"as_of": "2000-01-01T00:00:00Z"})
    assert early.status_code == 200 and early.json()["events_applied"] == 0
    naive = await auditor.get(f"/api/v1/audit/pairings/{pairing_id}/replay",
                              params={"as_of": "2027-01-01T00:00:00"})
    assert naive.status_code == 422
    for params in ({}, {"stream": f"pairing-{pairing_id}"}):
        v = await auditor.get("/api/v1/audit/verify", params=params)
        assert v.status_code == 200 and v.json()["ok"] is True, v.text
    # Launched pairings that have not reached their start date have no stream yet: the
    # cohort check names them rather than passing silently.
    v = (await auditor.get("/api/v1/audit/verify", params={"cohort": "web-c1"})).json()
    assert v["result"]["scope"] == "cohort"
    assert f"pairing-{pairing_id}" not in v["broken_streams"]
    bundle = await auditor.get("/api/v1/audit/cohorts/web-c1/bundle")
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    names_in_zip = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert any(n.endswith("manifest.json") for n in names_in_zip), names_in_zip
    assert (await auditor.get("/api/v1/audit/cohorts/nope/bundle")).status_code == 404
    assert (await auditor.get("/api/v1/audit/pairings/nope/history")).status_code == 404
    assert (await auditor.post("/api/v1/cohorts/web-c1/approve", json={})).status_code == 403
