"""The ways a rendered message reaches a person: e-mail (SMTP), a chat webhook, or the log.

A channel gets the contact (looked up from ``participants``, never from Temporal), the
delivery (its idempotency key and kind) and the rendered :class:`~delivery.message.Message`.
It returns the provider's id for what it handed over, or raises :class:`DeliveryFailed`
saying whether trying again could help. Every channel makes a resend of the same delivery
recognisable: SMTP by a Message-ID derived from the key, the webhook by the key itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from typing import Any, Literal, Protocol

import aiosmtplib
import httpx
import structlog
from pydantic import BaseModel, ConfigDict

from delivery.message import Attachment, Message


class Delivery(BaseModel):
    """One notification to one recipient; the key is ``event_id:recipient:template``."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    recipient: str
    template: str
    data: dict[str, Any] = {}


class Contact(BaseModel):
    """How to reach a recipient, from ``participants`` (or the program, for coordinators)."""

    model_config = ConfigDict(frozen=True)

    recipient: str
    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    # 'email' | 'chat' | None (no preference): people.csv ``notify_via``.
    notify_via: str | None = None
    erased: bool = False


class DeliveryFailed(Exception):
    """The channel did not accept the message. ``permanent``: retrying cannot help (an address
    the server refuses with 5xx, a webhook answering 4xx)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class NotificationChannel(Protocol):
    name: str

    async def send(self, contact: Contact, delivery: Delivery, message: Message) -> str | None:
        """Hand ``message`` over; return the provider's id for it. Raise DeliveryFailed."""
        ...

    async def aclose(self) -> None: ...


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The same Message-ID for every send of one delivery, so a duplicate is recognisable."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


class LogChannel:
    """Writes one JSON log line per notification; the default for development and demos.

    Logs the kind and the key, never the text: messages carry names.
    """

    name = "log"

    def __init__(self) -> None:
        self._log = structlog.get_logger("sebaya.notify")

    async def send(self, contact: Contact, delivery: Delivery, message: Message) -> str | None:
        self._log.info(
            "notification",
            recipient=delivery.recipient,
            has_email=bool(contact.email),
            template=delivery.template,
            language=message.language,
            idempotency_key=delivery.idempotency_key,
            **{k: v for k, v in delivery.data.items() if k not in {"recipient", "url"}},
        )
        return None

    async def aclose(self) -> None:
        return None


SmtpTls = Literal["none", "starttls", "tls"]


class SmtpChannel:
    """E-mail through an SMTP server, over a small pool of kept-open connections.

    ``tls``: ``tls`` (implicit, port 465), ``starttls`` (upgrade, port 587) or ``none``.
    A refused recipient (5xx) is permanent; 4xx answers and lost connections are transient.
    """

    name = "email"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        sender: str,
        tls: SmtpTls = "starttls",
        username: str | None = None,
        password: str | None = None,
        connections: int = 4,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port or {"tls": 465, "starttls": 587, "none": 25}[tls]
        self._tls = tls
        self._username = username
        self._password = password
        self._timeout = timeout
        self.sender = sender
        self._envelope_from = parseaddr(sender)[1]
        self.domain = self._envelope_from.rpartition("@")[2] or "localhost"
        self._size = connections
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(None)  # a slot; connected on first use

    def build(self, contact: Contact, delivery: Delivery, message: Message) -> bytes:
        """The message as sent: headers, then text and HTML alternatives and any attachments.

        The MIME parts come from the ``compat32`` classes; the top-level headers are written
        here: ``EmailMessage`` (and even compat32's generator) parse and refold every header
        in pure Python, which cost more than the rest of a delivery together.
        """
        if not contact.email:
            raise DeliveryFailed("no e-mail address", permanent=True)
        body = MIMEMultipart("alternative")
        body.attach(MIMEText(message.text, "plain", "utf-8"))
        body.attach(MIMEText(message.html, "html", "utf-8"))
        mail = body
        if message.attachments:
            mail = MIMEMultipart("mixed")
            mail.attach(body)
            for attachment in message.attachments:
                mail.attach(_attachment_part(attachment))
        headers = "".join(_header_line(name, value) for name, value in (
            ("From", self.sender),
            ("To", formataddr((contact.name or "", contact.email), charset="utf-8")),
            ("Subject", message.subject),
            ("Date", formatdate(localtime=False)),
            ("Message-ID", message_id_for(delivery.idempotency_key, self.domain)),
            ("Content-Language", message.language),
            ("X-Sebaya-Delivery", delivery.idempotency_key),
            ("X-Sebaya-Kind", delivery.template),
            ("Auto-Submitted", "auto-generated"),
        ))
        return headers.encode("ascii") + mail.as_bytes()

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self._host, port=self._port, timeout=self._timeout,
            use_tls=self._tls == "tls", start_tls=self._tls == "starttls",
            username=self._username, password=self._password,
        )
        await smtp.connect()
        return smtp

    async def send(self, contact: Contact, delivery: Delivery, message: Message) -> str | None:
        mail = self.build(contact, delivery, message)
        smtp = await self._idle.get()
        try:
            for _ in range(2):
                reused = smtp is not None and smtp.is_connected
                try:
                    if smtp is None or not reused:
                        smtp = await self._connect()
                    errors, _ = await smtp.sendmail(self._envelope_from, [str(contact.email)],
                                                    mail)
                    if errors:  # one recipient only, so this is that recipient refused
                        code, text = next(iter(errors.values()))
                        raise DeliveryFailed(f"{code} {text}", permanent=code >= 500)
                    return message_id_for(delivery.idempotency_key, self.domain)
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    refused = exc.recipients[0]
                    raise DeliveryFailed(f"{refused.code} {refused.message}",
                                         permanent=refused.code >= 500) from exc
                except aiosmtplib.SMTPResponseException as exc:
                    if exc.code == 421 and reused:  # the server is closing an idle connection
                        self._discard(smtp)
                        smtp = None
                        continue
                    raise DeliveryFailed(f"{exc.code} {exc.message}",
                                         permanent=exc.code >= 500) from exc
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                        aiosmtplib.SMTPTimeoutError, OSError) as exc:
                    self._discard(smtp)
                    smtp = None
                    # A kept-open connection the server dropped meanwhile gets one fresh try.
                    if not reused:
                        raise DeliveryFailed(f"smtp connection: {exc}", permanent=False) from exc
            raise DeliveryFailed("smtp server keeps closing the connection", permanent=False)
        finally:
            self._idle.put_nowait(smtp)

    @staticmethod
    def _discard(smtp: aiosmtplib.SMTP | None) -> None:
        if smtp is not None:
            smtp.close()

    async def aclose(self) -> None:
        for _ in range(self._idle.qsize()):
            smtp = self._idle.get_nowait()
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except aiosmtplib.SMTPException:
                    smtp.close()
            self._idle.put_nowait(None)


def _header_line(name: str, value: str) -> str:
    """One header line: short ASCII as is, anything else folded / RFC 2047 encoded."""
    if value.isascii() and len(name) + len(value) < 76:
        return f"{name}: {value}\n"
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: {Header(value, charset, header_name=name).encode()}\n"


def _attachment_part(attachment: Attachment) -> MIMEBase:
    content_type, _, raw_params = attachment.content_type.partition(";")
    maintype, _, subtype = content_type.strip().partition("/")
    params = {k.strip(): v.strip().strip('"')
              for k, _, v in (p.partition("=") for p in raw_params.split(";") if "=" in p)}
    part = MIMEBase(maintype, subtype)
    for key, value in params.items():
        part.set_param(key, value)
    part.set_payload(attachment.content)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
    return part


WebhookStyle = Literal["slack", "generic"]
SIGNATURE_HEADER = "X-Sebaya-Signature"
TIMESTAMP_HEADER = "X-Sebaya-Timestamp"
KEY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 over "<timestamp>.<body>">``; the receiver recomputes it and
    rejects a timestamp older than a few minutes (a replay)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


class WebhookChannel:
    """A JSON POST per message to one URL: Slack's incoming-webhook shape (``text`` +
    ``blocks``) or Sebaya's generic shape, which names the recipient so a chat bridge can
    route it. With a secret, every POST is signed (see :func:`sign`).

    Timeouts, connection errors, 429 and 5xx are retried ``attempts`` times with doubling
    backoff; any other 4xx is permanent.
    """

    name = "chat"

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        style: WebhookStyle = "generic",
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._style = style
        self._attempts = attempts
        self._backoff = backoff
        self._client = client or httpx.AsyncClient(timeout=timeout)

    def payload(self, contact: Contact, delivery: Delivery, message: Message) -> dict[str, Any]:
        if self._style == "slack":
            blocks: list[dict[str, Any]] = [
                {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
                {"type": "section", "text": {"type": "plain_text", "text": message.text[:3000]}},
            ]
            if message.link:
                blocks.append({"type": "actions", "elements": [{
                    "type": "button", "url": message.link,
                    "text": {"type": "plain_text", "text": "Sebaya"},
                }]})
            return {"text": message.subject, "blocks": blocks}
        return {
            "idempotency_key": delivery.idempotency_key,
            "kind": delivery.template,
            "language": message.language,
            "recipient": {"id": contact.recipient, "name": contact.name,
                          "email": contact.email},
            "subject": message.subject,
            "text": message.text,
            "link": message.link,
        }

    async def send(self, contact: Contact, delivery: Delivery, message: Message) -> str | None:
        body = json.dumps(self.payload(contact, delivery, message),
                          separators=(",", ":"), ensure_ascii=False).encode()
        last = ""
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            headers = {"Content-Type": "application/json", KEY_HEADER: delivery.idempotency_key}
            if self._secret:
                # Signed per attempt: a retry carries a fresh timestamp, the same key.
                timestamp = str(int(time.time()))
                headers[TIMESTAMP_HEADER] = timestamp
                headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
            try:
                response = await self._client.post(self._url, content=body, headers=headers)
            except httpx.TransportError as exc:  # timeouts, refused or dropped connections
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return response.headers.get("X-Request-Id") or delivery.idempotency_key
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code < 500 and response.status_code != 429:
                raise DeliveryFailed(last, permanent=True)
        raise DeliveryFailed(f"after {self._attempts} attempts: {last}", permanent=False)

    async def aclose(self) -> None:
        await self._client.aclose()
