"""`sebaya dev up` runs the mail catcher; everything built from the settings mails there by
default, and `sebaya dev mail` lists what arrived."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from activities.notify import SendNotificationsInput
from delivery.catcher import read_messages
from delivery.channels import Contact, Delivery
from delivery.message import Attachment, Message
from sebaya.bootstrap import build_notifier, build_registry
from sebaya.devstack import DevStack, mail_catcher_address
from sebaya.settings import Settings
from tests.delivery.support import add_person

pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parents[2]


def with_invite(delivery: Delivery, contact: Contact, message: Message) -> Message:
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    return message.with_attachment(
        Attachment("invite.ics", "text/calendar; method=REQUEST; charset=utf-8", ics))


async def test_dev_stack_catches_mail(temporal_env: Any, db_dsn: str, db_pool: asyncpg.Pool,
                                      tmp_path: Path) -> None:
    state = tmp_path / "state"
    address = temporal_env.client.service_client.config.target_host
    settings = Settings(state_dir=state, database_url=db_dsn, temporal_address=address,
                        smtp_host=None, smtp_from="Sebaya <noreply@sebaya.test>")

    async def noop(dsn: str) -> None:
        return None

    stack = DevStack(settings, migrator=noop, report=print)
    try:
        status = await asyncio.to_thread(stack.up, worker=False)
        mail = status.service("mail")
        assert mail.alive and mail.address and mail.address.startswith("smtp://127.0.0.1:")
        host_port = mail_catcher_address(state)
        assert host_port is not None and mail.address.endswith(f":{host_port[1]}")

        await add_person(db_pool, "E1", "Budi", "budi@example.co.id")
        notifier = build_notifier(db_pool, build_registry(), settings, decorators=(with_invite,))
        result = await notifier.send_notifications(SendNotificationsInput(deliveries=[
            Delivery(idempotency_key="ev1:E1:reminder_meeting", recipient="E1",
                     template="reminder_meeting",
                     data={"pairing_id": "c1.E2.E1.1", "due_at": "2027-02-01T03:00:00+00:00",
                           "reference": "m1", "sequence": 1})]))
        await notifier.aclose()
        assert result.sent == 1

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from sebaya.cli import main; main()", "dev", "mail", "--json",
            cwd=ROOT, env={**os.environ, "SEBAYA_STATE_DIR": str(state)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        listed = [json.loads(line) for line in out.decode().splitlines()]
        assert len(listed) == 1
        assert listed[0]["to"] == ["budi@example.co.id"]
        assert listed[0]["subject"].startswith("Pengingat pertemuan: Senin, 1 Februari 2027")
        assert listed[0]["attachments"] == ["invite.ics (text/calendar)"]
        assert Path(listed[0]["file"]).parent == state.resolve() / "mail"
        eml = read_messages(state / "mail")[0].parsed()
        invite = next(eml.iter_attachments())
        assert invite.get_param("method") == "REQUEST"
    finally:
        results = await asyncio.to_thread(stack.down)
    assert {r.name: r.outcome for r in results}["mail"] == "stopped"
    assert mail_catcher_address(state) is None
