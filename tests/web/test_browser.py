"""Real Chromium (Playwright) against the web service on a real port: a mentee signs in with
the link from the mail the SMTP channel delivered, sets goals, logs a meeting and sees it in
the timeline; a coordinator signs in with a token and approves a proposal. Never skipped:
``make test`` installs the browser first (``make browser``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from delivery.catcher import MailCatcher
from delivery.channels import SmtpChannel
from intake import load_people
from intake.program_yaml import check_program
from sebaya import operations
from tests.web.conftest import WebEnv, free_port, serving, web_env_for
from web import auth

pytestmark = pytest.mark.temporal
CHROMIUM = os.environ.get("SEBAYA_CHROMIUM", "/usr/lib/chromium/chromium-headless-shell")
CHROMIUM_PRESENT = Path(CHROMIUM).exists()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    assert CHROMIUM_PRESENT, f"{CHROMIUM} is missing: run `make browser`"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking"])
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def stack(temporal_env: Any, db_pool: Any, task_queue: str, tmp_path: Path
                ) -> AsyncIterator[tuple[WebEnv, MailCatcher, str]]:
    port = free_port()
    async with MailCatcher(tmp_path / "mail") as catcher:
        channel = SmtpChannel("127.0.0.1", catcher.port, sender="Sebaya <sebaya@example.co.id>",
                              tls="none")
        async with web_env_for(temporal_env, db_pool, task_queue, channel=channel,
                               public_url=f"http://127.0.0.1:{port}") as web:
            async with serving(web.app, port) as base:
                yield web, catcher, base


async def link_from_mail(catcher: MailCatcher, to: str) -> str:
    for _ in range(100):
        for mail in catcher.messages():
            if to in mail.recipients:
                body = mail.parsed().get_body(preferencelist=("plain",))
                assert body is not None
                found = re.search(r"http://127\.0\.0\.1:\d+/auth/magic\?token=[\w.\-]+",
                                  body.get_content())
                assert found, body.get_content()
                return found.group(0)
        await asyncio.sleep(0.05)  # real time: the mail is sent after the answer
    raise AssertionError(f"no mail to {to}")


async def test_mentee_signs_in_sets_goals_and_logs_a_meeting(
        temporal_env: Any, db_pool: Any, task_queue: str, tmp_path: Path) -> None:
    async with stack(temporal_env, db_pool, task_queue, tmp_path) as (web, catcher, base):
        pid, _ = await web.pairing(mentor="M400", mentee="E400")
        mentor = await web.participant("M400")
        r = await mentor.put(f"/api/v1/pairings/{pid}/goals", json={"goals": [{
            "goal_id": "lead-1", "title": "Melatih orang lain", "success_measure": "umpan balik"}]})
        assert r.status_code == 200, r.text
        async with chromium() as browser:
            page: Page = await browser.new_page(locale="id-ID")
            await page.goto(f"{base}/")
            await expect(page).to_have_url(f"{base}/sign-in")
            await page.get_by_label("Alamat e-mail").fill("e400@example.co.id")
            await page.get_by_role("button", name="Kirim tautan masuk").click()
            await expect(page.get_by_role("status")).to_contain_text("tautan masuk")
            link = await link_from_mail(catcher, "e400@example.co.id")
            await page.goto(link)
            await page.get_by_role("button", name="Lanjutkan").click()
            await expect(page.get_by_role("heading", level=1)).to_contain_text("Mentor M400")

            await page.get_by_role("link", name="Tetapkan atau ubah tujuan").click()
            await page.get_by_label("Judul tujuan").first.fill("Menguasai SQL dasar")
            await page.get_by_label("Ukuran keberhasilan").first.fill("Membuat laporan sendiri")
            await page.get_by_role("button", name="Simpan").click()
            await expect(page.get_by_role("status")).to_contain_text("Tersimpan")
            await expect(page.locator(".goals").first).to_contain_text("Menguasai SQL dasar")

            # A refused action shows the domain's message on the form, keeping the input.
            await page.get_by_role("link", name="Catat pertemuan").click()
            await page.get_by_label("Durasi (menit)").fill("45")
            await page.get_by_role("button", name="Simpan").click()
            await expect(page.get_by_role("alert")).to_contain_text("topics")
            await expect(page.get_by_label("Durasi (menit)")).to_have_value("45")
            await page.get_by_label("keterampilan IT").check()
            await page.get_by_role("button", name="Simpan").click()
            await expect(page.get_by_role("status")).to_contain_text("Tersimpan")
            await expect(page.locator("#meetings-held")).to_have_text("1")
            timeline = page.locator(".timeline")
            await expect(timeline.locator(".ev-MeetingHeld")).to_contain_text("Pertemuan ke-1")
            await expect(timeline.locator(".ev-MeetingHeld")).to_contain_text("Anda")

            # English on request, remembered.
            await page.get_by_role("link", name="English").click()
            await expect(page.get_by_role("heading", name="Timeline")).to_be_visible()


async def test_coordinator_approves_a_proposal(temporal_env: Any, db_pool: Any,
                                               task_queue: str, tmp_path: Path) -> None:
    async with stack(temporal_env, db_pool, task_queue, tmp_path) as (web, _, base):
        program_file = tmp_path / "program.yaml"
        program_file.write_text((EXAMPLES / "program.yaml").read_text(encoding="utf-8")
                                .replace("approval: auto", "approval: manual"), "utf-8")
        program, problems = check_program(program_file)
        assert program is not None, problems
        people = load_people(EXAMPLES / "people.csv", program)
        await operations.start_cohort(web.pool, web.client, program=program, people=people,
                                      task_queue=web.task_queue, cohort_id="browser-c1")
        for _ in range(600):
            state = await operations.cohort_state(web.client, "browser-c1")
            if state.proposal:
                break
            await asyncio.sleep(0.1)  # real time: matching runs on the worker
        proposed = len(state.proposal)
        _, token = await auth.create_api_token(web.pool, "coordinator", "browser test")
        async with chromium() as browser:
            page = await browser.new_page(locale="en-US")
            await page.goto(f"{base}/staff/sign-in")
            await page.get_by_label("API token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{base}/cohorts")
            await page.get_by_role("link", name=re.compile(program.name)).click()
            rows = page.locator("table tbody tr")
            await expect(rows).to_have_count(proposed)
            first = state.proposal[0]
            await page.get_by_label(f"Drop {first.mentor} / {first.mentee}").check()
            await page.get_by_role("button", name="Approve the proposal").click()
            await expect(page.get_by_role("status")).to_contain_text(
                f"{proposed - 1} pairings started")
        state = await operations.cohort_state(web.client, "browser-c1")
        assert not state.proposal and len(state.pending_launch) + state.launched == proposed - 1
