"""The catcher reads back long header values as they were sent: the delivery key of a nudge
or a coordinator's mail is longer than a header line, so it is folded onto the next line in
transit and must be unfolded without the folding space (found by the chaos run, where 148 of
796 caught messages did not match their delivery row)."""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
from email.message import EmailMessage
from pathlib import Path

from delivery.catcher import MailCatcher

LONG_KEY = "33d41287-2b38-5f7d-8706-621c6c215068:E0024:nudge_meetings_missed"


async def test_a_folded_delivery_key_reads_back_unchanged(tmp_path: Path) -> None:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Sebaya <sebaya@localhost>"
    message["To"] = "sari@example.co.id"
    message["Subject"] = "Pengingat"
    message["Message-ID"] = "<174.33d41287@sebaya.localhost>"
    message["X-Sebaya-Delivery"] = LONG_KEY
    message.set_content("Halo")
    async with MailCatcher(tmp_path / "mail") as catcher:
        def send() -> None:
            with smtplib.SMTP(catcher.host, catcher.port, timeout=10) as smtp:
                smtp.sendmail("sebaya@localhost", ["sari@example.co.id"], message.as_bytes())

        await asyncio.to_thread(send)
        (caught,) = catcher.messages()
    # Folded as the worker's mail arrives: the value on a continuation line.
    assert f"X-Sebaya-Delivery: {LONG_KEY}".encode() not in caught.path.read_bytes()
    assert caught.delivery_key == LONG_KEY
    assert caught.message_id == "<174.33d41287@sebaya.localhost>"
