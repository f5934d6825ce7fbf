"""Operations on delivery records: `sebaya notifications list/retry` as a real process, and a
person whose notifications keep failing showing up in `cohort status`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg

from activities.notify import NotificationActivities, SendNotificationsInput
from delivery.catcher import MailCatcher
from delivery.channels import Delivery, SmtpChannel
from delivery.routing import Router
from projections.queries import cohort_status
from tests.delivery.support import add_person, deliveries
from tests.delivery.test_email_delivery import _closed_port

ROOT = Path(__file__).resolve().parents[2]


def reminder(n: int, recipient: str = "E1") -> Delivery:
    return Delivery(idempotency_key=f"ev{n}:{recipient}:reminder_meeting", recipient=recipient,
                    template="reminder_meeting",
                    data={"pairing_id": "c1.E2.E1.1", "due_at": "2027-02-01T03:00:00+00:00",
                          "reference": f"m{n}", "sequence": 1})


async def sebaya(dsn: str, smtp_port: int, *args: str) -> tuple[int, str]:
    env = {**os.environ, "SEBAYA_DATABASE_URL": dsn, "SEBAYA_SMTP_HOST": "127.0.0.1",
           "SEBAYA_SMTP_PORT": str(smtp_port), "SEBAYA_SMTP_TLS": "none",
           "SEBAYA_SMTP_FROM": "Sebaya <noreply@sebaya.test>", "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from sebaya.cli import main; main()", "notifications", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_list_and_retry_from_the_command_line(db_pool: asyncpg.Pool, db_dsn: str,
                                                    tmp_path: Path) -> None:
    await add_person(db_pool, "E1", "Budi", "budi@example.co.id")
    port = _closed_port()
    notify = NotificationActivities(db_pool, Router(email=SmtpChannel(
        "127.0.0.1", port, sender="noreply@sebaya.test", tls="none")))
    await notify.send_notifications(SendNotificationsInput(deliveries=[reminder(1), reminder(2)]))
    await notify.aclose()

    code, out = await sebaya(db_dsn, port, "list", "--status", "failed", "--json")
    assert code == 0, out
    listed = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["idempotency_key"] for r in listed) == [
        "ev1:E1:reminder_meeting", "ev2:E1:reminder_meeting"]
    assert all(r["status"] == "failed" and r["attempts"] == 1 for r in listed)

    code, out = await sebaya(db_dsn, port, "list", "--status", "bogus")
    assert code == 2 and "unknown status 'bogus'" in out
    code, out = await sebaya(db_dsn, port, "retry")
    assert code == 2 and "--all-failed" in out

    async with MailCatcher(tmp_path / "mail", port=port) as catcher:
        code, out = await sebaya(db_dsn, port, "retry", "ev1:E1:reminder_meeting", "--json")
        assert code == 0, out
        assert json.loads(out)["sent"] == 1
        code, out = await sebaya(db_dsn, port, "retry", "--all-failed")
        assert code == 0 and "sent: 1" in out, out
        assert sorted(m.delivery_key or "" for m in catcher.messages()) == [
            "ev1:E1:reminder_meeting", "ev2:E1:reminder_meeting"]
    code, out = await sebaya(db_dsn, port, "list")
    assert code == 0 and "ev2:E1:reminder_meeting" in out and "sent" in out
    assert {r["status"] for r in (await deliveries(db_pool)).values()} == {"sent"}


async def test_bounced_person_is_at_risk_in_cohort_status(db_pool: asyncpg.Pool,
                                                          tmp_path: Path) -> None:
    await db_pool.execute("INSERT INTO cohort_view (cohort_id, phase) VALUES ('c1', 'running')")
    await db_pool.execute(
        "INSERT INTO pairing_view (pairing_id, cohort_id, mentor_id, mentee_id, phase, "
        "stream_version, last_event_at) VALUES ('c1.E2.E1.1', 'c1', 'E1', 'E2', 'active', 3, "
        "now())")
    await add_person(db_pool, "E1", "Budi", "budi@example.co.id")
    await add_person(db_pool, "E2", "Sari", "sari@example.co.id")
    async with MailCatcher(tmp_path / "mail", reject=["sari@example.co.id"]) as catcher:
        notify = NotificationActivities(db_pool, Router(email=SmtpChannel(
            "127.0.0.1", catcher.port, sender="noreply@sebaya.test", tls="none")))
        await notify.send_notifications(SendNotificationsInput(
            deliveries=[reminder(1, "E1"), reminder(1, "E2")]))
        status = await cohort_status(db_pool, "c1")
        assert status is not None
        assert [(r.pairing_id, r.reasons) for r in status.at_risk] == [
            ("c1.E2.E1.1", ["notifications to the mentee (E2) keep failing"])]
        # Once a notification reaches her again, she is no longer at risk.
        await db_pool.execute("UPDATE participants SET email = 'sari.dewi@example.co.id' "
                              "WHERE employee_id = 'E2'")
        await notify.dispatcher.retry(["ev1:E2:reminder_meeting"])
        await notify.aclose()
    status = await cohort_status(db_pool, "c1")
    assert status is not None and status.at_risk == []
