"""Chat delivery against a real local HTTP receiver: signatures, retries, permanent 4xx."""

from __future__ import annotations

import hashlib
import hmac

import asyncpg
import httpx

from activities.notify import NotificationActivities, SendNotificationsInput
from delivery.channels import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Contact,
    Delivery,
    WebhookChannel,
)
from delivery.message import Renderer
from delivery.routing import Router
from tests.delivery.support import WebhookReceiver, add_person, deliveries

SECRET = "s3cret"
PAIRING = "c9.E2.E1.1"


def reminder(key: str = "ev7") -> list[Delivery]:
    return [Delivery(idempotency_key=f"{key}:E1:reminder_meeting", recipient="E1",
                     template="reminder_meeting",
                     data={"pairing_id": PAIRING, "due_at": "2027-02-01T03:00:00+00:00",
                           "reference": "m3", "sequence": 1})]


def via_webhook(pool: asyncpg.Pool, url: str, **kw: object) -> NotificationActivities:
    chat = WebhookChannel(url, secret=SECRET, backoff=0.05, **kw)  # type: ignore[arg-type]
    return NotificationActivities(pool, Router(chat=chat), renderer=Renderer())


def verify(received_headers: dict[str, str], body: bytes) -> bool:
    ts = received_headers[TIMESTAMP_HEADER.lower()]
    mac = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received_headers[SIGNATURE_HEADER.lower()], f"v1={mac}")


async def test_500_then_200_is_sent_once_with_the_same_key(db_pool: asyncpg.Pool) -> None:
    await add_person(db_pool, "E1", "Budi", None)
    async with WebhookReceiver(script=[500]) as hook:
        notify = via_webhook(db_pool, hook.url)
        result = await notify.send_notifications(SendNotificationsInput(deliveries=reminder()))
        await notify.aclose()
    assert result.sent == 1
    assert len(hook.received) == 2
    keys = {r.headers[KEY_HEADER.lower()] for r in hook.received}
    assert keys == {"ev7:E1:reminder_meeting"}
    assert all(verify(r.headers, r.body) for r in hook.received)
    payload = hook.received[1].json()
    assert payload["recipient"] == {"id": "E1", "name": "Budi", "email": None}
    assert payload["kind"] == "reminder_meeting" and payload["language"] == "id"
    assert "Senin, 1 Februari 2027 10.00 WIB" in payload["text"]
    row = (await deliveries(db_pool))["ev7:E1:reminder_meeting"]
    assert (row["status"], row["channel"], row["attempts"]) == ("sent", "chat", 1)


async def test_4xx_is_permanent_and_not_retried(db_pool: asyncpg.Pool) -> None:
    await add_person(db_pool, "E1", "Budi", None)
    async with WebhookReceiver(script=[404, 200]) as hook:
        notify = via_webhook(db_pool, hook.url)
        result = await notify.send_notifications(SendNotificationsInput(deliveries=reminder()))
        await notify.aclose()
    assert (result.sent, result.dead) == (0, 1)
    assert len(hook.received) == 1
    row = (await deliveries(db_pool))["ev7:E1:reminder_meeting"]
    assert row["status"] == "dead" and row["last_error"].startswith("HTTP 404")


async def test_persistent_5xx_and_timeouts_are_failed_after_bounded_tries(
        db_pool: asyncpg.Pool) -> None:
    await add_person(db_pool, "E1", "Budi", None)
    async with WebhookReceiver(script=[503, 502, 500, 500]) as hook:
        notify = via_webhook(db_pool, hook.url, attempts=3)
        result = await notify.send_notifications(SendNotificationsInput(deliveries=reminder()))
        assert len(hook.received) == 3
        assert result.failed == 1
        # The delivery layer's own retry later goes through.
        assert (await notify.dispatcher.retry()).sent == 1
        await notify.aclose()
    # A receiver that never answers in time counts as a transient failure too.
    async with WebhookReceiver(delay=lambda n: 1.0) as slow:
        notify = via_webhook(db_pool, slow.url, attempts=2, timeout=0.2)
        result = await notify.send_notifications(
            SendNotificationsInput(deliveries=reminder("ev8")))
        await notify.aclose()
    assert result.failed == 1
    row = (await deliveries(db_pool))["ev8:E1:reminder_meeting"]
    assert row["status"] == "failed" and "Timeout" in row["last_error"]


async def test_slack_shape() -> None:
    async with WebhookReceiver() as hook:
        chat = WebhookChannel(hook.url, style="slack", client=httpx.AsyncClient())
        message = Renderer("https://sebaya.test").render(
            "reminder_meeting", reminder()[0].data, language="en", recipient="E1",
            name="Budi", timezone="Asia/Jakarta")
        await chat.send(Contact(recipient="E1"), reminder()[0], message)
        await chat.aclose()
    body = hook.received[0].json()
    assert body["text"] == "Meeting reminder: Monday, 1 February 2027 10:00 WIB"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "actions"]
    assert body["blocks"][2]["elements"][0]["url"] == f"https://sebaya.test/pairings/{PAIRING}"
    assert SIGNATURE_HEADER.lower() not in hook.received[0].headers  # no secret, no signature
