"""E-mail delivery end to end against a real SMTP server (the aiosmtpd catcher)."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import pytest

from activities.notify import NotificationActivities, SendNotificationsInput
from delivery.catcher import MailCatcher
from delivery.channels import Delivery, SmtpChannel, message_id_for
from delivery.dispatch import MAX_ATTEMPTS
from delivery.message import Renderer
from delivery.routing import Router
from domain import events as e
from domain.notifications import notifications_for
from domain.pairing import PairingState
from domain.program import Language, NotificationPolicy
from intake import load_program
from tests.delivery.support import add_cohort, add_person, deliveries

ROOT = Path(__file__).resolve().parents[2]
COHORT = "c2027"
PAIRING = f"{COHORT}.E2.E1.1"  # mentee E2, mentor E1


def program_json(language: Language = Language.ID, coordinator: str | None = None) -> str:
    spec = load_program(ROOT / "examples" / "program.yaml")
    spec = spec.model_copy(update={
        "language": language,
        "notifications": NotificationPolicy(coordinator_email=coordinator),
    })
    return spec.model_dump_json()


async def setup_people(pool: asyncpg.Pool, language: Language = Language.ID,
                       coordinator: str | None = None) -> None:
    await add_cohort(pool, COHORT, program_json(language, coordinator))
    await add_person(pool, "E1", "Budi Santoso", "budi@example.co.id")
    await add_person(pool, "E2", "Sari Dewi", "sari@example.co.id")


def matched(key_prefix: str = "ev1") -> list[Delivery]:
    return [Delivery(idempotency_key=f"{key_prefix}:{eid}:pairing_matched", recipient=eid,
                     template="pairing_matched", data={"pairing_id": PAIRING, "role": role})
            for eid, role in (("E1", "mentor"), ("E2", "mentee"))]


def notify_via_smtp(pool: asyncpg.Pool, port: int) -> NotificationActivities:
    smtp = SmtpChannel("127.0.0.1", port, sender="Sebaya <noreply@sebaya.test>", tls="none")
    return NotificationActivities(pool, Router(email=smtp),
                                  renderer=Renderer("https://sebaya.test"))


async def test_matched_pair_gets_one_mail_each_in_program_language(
        db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    await setup_people(db_pool)
    async with MailCatcher(tmp_path / "mail") as catcher:
        notify = notify_via_smtp(db_pool, catcher.port)
        first = await notify.send_notifications(SendNotificationsInput(deliveries=matched()))
        again = await notify.send_notifications(SendNotificationsInput(deliveries=matched()))
        await notify.aclose()
        caught = catcher.messages()
    assert (first.sent, first.already_sent) == (2, 0)
    assert (again.sent, again.already_sent) == (0, 2)
    assert len(caught) == 2
    by_to = {m.recipients[0]: m for m in caught}
    budi = by_to["budi@example.co.id"].parsed()
    assert budi["Subject"] == "Anda dipasangkan dengan Sari Dewi"
    assert budi["Message-ID"] == message_id_for("ev1:E1:pairing_matched", "sebaya.test")
    text = budi.get_body(("plain",)).get_content()
    assert "Halo Budi Santoso" in text and "Peran Anda: mentor" in text
    assert f"https://sebaya.test/pairings/{PAIRING}" in text
    html = budi.get_body(("html",)).get_content()
    assert f'href="https://sebaya.test/pairings/{PAIRING}"' in html
    rows = await deliveries(db_pool)
    row = rows["ev1:E1:pairing_matched"]
    assert (row["status"], row["attempts"], row["channel"]) == ("sent", 1, "email")
    assert row["provider_message_id"] == budi["Message-ID"]


async def test_english_program_writes_english(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    await setup_people(db_pool, Language.EN)
    async with MailCatcher(tmp_path / "mail") as catcher:
        notify = notify_via_smtp(db_pool, catcher.port)
        await notify.send_notifications(SendNotificationsInput(deliveries=matched()))
        await notify.aclose()
        subjects = sorted(m.subject for m in catcher.messages())
    assert subjects == ["You have been paired with Budi Santoso",
                        "You have been paired with Sari Dewi"]


async def test_bounced_address_is_dead_and_the_other_still_gets_mail(
        db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    await setup_people(db_pool)
    async with MailCatcher(tmp_path / "mail", reject=["sari@example.co.id"]) as catcher:
        notify = notify_via_smtp(db_pool, catcher.port)
        result = await notify.send_notifications(SendNotificationsInput(deliveries=matched()))
        # The same connection keeps working after a refused recipient.
        later = await notify.send_notifications(
            SendNotificationsInput(deliveries=matched("ev2")[:1]))
        await notify.aclose()
        caught = catcher.messages()
    assert (result.sent, result.dead, result.failed) == (1, 1, 0)
    assert later.sent == 1
    assert [m.recipients for m in caught] == [["budi@example.co.id"]] * 2
    row = (await deliveries(db_pool))["ev1:E2:pairing_matched"]
    assert row["status"] == "dead" and row["attempts"] == 1
    assert row["last_error"].startswith("550")


def _readable(mail: EmailMessage) -> str:
    """Every header and decoded body part, as a participant's mail program would show it."""
    parts = [f"{k}: {v}" for k, v in mail.items()]
    parts += [part.get_content() for part in mail.walk() if part.get_content_maintype() == "text"]
    return "\n".join(parts)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_server_down_is_failed_then_retried_until_sent(
        db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    await setup_people(db_pool)
    port = _closed_port()
    notify = notify_via_smtp(db_pool, port)
    result = await notify.send_notifications(SendNotificationsInput(deliveries=matched()))
    assert (result.sent, result.failed) == (0, 2)
    rows = await deliveries(db_pool)
    assert {r["status"] for r in rows.values()} == {"failed"}
    assert all("smtp connection" in r["last_error"] for r in rows.values())
    async with MailCatcher(tmp_path / "mail", port=port) as catcher:
        retried = await notify.dispatcher.retry()
        await notify.aclose()
        assert len(catcher.messages()) == 2
    assert retried.sent == 2
    rows = await deliveries(db_pool)
    assert {(r["status"], r["attempts"]) for r in rows.values()} == {("sent", 2)}


async def test_retries_are_bounded_then_dead(db_pool: asyncpg.Pool) -> None:
    await setup_people(db_pool)
    notify = notify_via_smtp(db_pool, _closed_port())
    await notify.send_notifications(SendNotificationsInput(deliveries=matched()[:1]))
    for _ in range(MAX_ATTEMPTS - 1):
        await notify.dispatcher.retry()
    await notify.aclose()
    row = (await deliveries(db_pool))["ev1:E1:pairing_matched"]
    assert (row["status"], row["attempts"]) == ("dead", MAX_ATTEMPTS)
    # Dead is not retried by the sweep; an operator names the key to try again.
    assert (await notify.dispatcher.retry()).sent == 0


async def test_partner_notice_of_exit_is_neutral(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    await setup_people(db_pool, coordinator="koordinator@example.co.id")
    state = PairingState(pairing_id=PAIRING, cohort_id=COHORT, mentor_id="E1", mentee_id="E2")
    exited = e.PairingExited(initiated_by=e.ExitInitiator.MENTEE,
                             reason=e.ExitReason.SCHEDULE_CONFLICT, phase_at_exit="running",
                             exited_at=datetime(2027, 3, 1, tzinfo=UTC), leaving_employee_id="E2")
    event_id = uuid.uuid4()
    notes = notifications_for(state, exited)
    batch = [Delivery(idempotency_key=f"{event_id}:{n.recipient}:{n.template}",
                      recipient=n.recipient, template=n.template, data=n.data) for n in notes]
    async with MailCatcher(tmp_path / "mail") as catcher:
        notify = notify_via_smtp(db_pool, catcher.port)
        result = await notify.send_notifications(SendNotificationsInput(deliveries=batch))
        await notify.aclose()
        caught = {m.recipients[0]: _readable(m.parsed()) for m in catcher.messages()}
    assert result.sent == 2
    assert set(caught) == {"budi@example.co.id", "koordinator@example.co.id"}
    partner = caught["budi@example.co.id"]
    assert "schedule" not in partner.lower() and "mentee" not in partner.lower()
    assert "bukan kesalahan siapa pun" in partner
    report = caught["koordinator@example.co.id"]
    assert "schedule_conflict" in report and "Sari Dewi (mentee) & Budi Santoso (mentor)" in report


@pytest.mark.parametrize("erased", [True])
async def test_erased_person_gets_nothing(db_pool: asyncpg.Pool, tmp_path: Path,
                                          erased: bool) -> None:
    await setup_people(db_pool)
    await db_pool.execute("UPDATE participants SET email = NULL, name = NULL, "
                          "erased_at = now() WHERE employee_id = 'E2'")
    async with MailCatcher(tmp_path / "mail") as catcher:
        notify = notify_via_smtp(db_pool, catcher.port)
        result = await notify.send_notifications(SendNotificationsInput(deliveries=matched()))
        await notify.aclose()
        assert [m.recipients for m in catcher.messages()] == [["budi@example.co.id"]]
    assert (result.sent, result.suppressed) == (1, 1)


async def test_non_ascii_names_survive_the_trip(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    await add_cohort(db_pool, COHORT, program_json(Language.EN))
    await add_person(db_pool, "E1", "Budi Śantoso", "budi@example.co.id")
    await add_person(db_pool, "E2", "Sári Dëwi — ☕", "sari@example.co.id")
    async with MailCatcher(tmp_path / "mail") as catcher:
        notify = notify_via_smtp(db_pool, catcher.port)
        await notify.send_notifications(SendNotificationsInput(deliveries=matched()))
        await notify.aclose()
        mails = {m.recipients[0]: m.parsed() for m in catcher.messages()}
    budi = mails["budi@example.co.id"]
    assert budi["Subject"] == "You have been paired with Sári Dëwi — ☕"
    assert mails["sari@example.co.id"]["To"] == "Sári Dëwi — ☕ <sari@example.co.id>"
    text = mails["sari@example.co.id"].get_body(("plain",)).get_content()
    assert "Hello Sári Dëwi — ☕," in text and "with Budi Śantoso." in text
