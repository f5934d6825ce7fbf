"""A local SMTP server that keeps every message it receives as a ``.eml`` file.

For development (the embedded stack and Compose run it; ``sebaya dev mail`` lists what it
caught) and for tests, which run it in their own event loop. It never relays anything.
``reject`` lists addresses answered with ``550`` at RCPT, to rehearse bounces.

    python -m delivery.catcher --dir .sebaya/mail --port 1025
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import itertools
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

RECIPIENTS_HEADER = "X-Catcher-Rcpt-To"


class _Handler:
    def __init__(self, folder: Path, reject: Iterable[str]) -> None:
        self.folder = folder
        self.reject = {a.lower() for a in reject}
        self._seq = itertools.count(1)
        self.received = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        header = f"{RECIPIENTS_HEADER}: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        # Unique, sortable by arrival, and written whole before it becomes visible as .eml.
        name = f"{time.time_ns()}-{os.getpid()}-{next(self._seq):06d}"
        tmp = self.folder / f"{name}.tmp"
        tmp.write_bytes(header + content)
        tmp.rename(self.folder / f"{name}.eml")
        self.received += 1
        return "250 Message accepted for delivery"


class MailCatcher:
    """Runs in the caller's event loop: ``async with MailCatcher(folder) as catcher:``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0,
                 reject: Iterable[str] = ()) -> None:
        self.folder = Path(folder)
        self.host = host
        self.port = port
        self.handler = _Handler(self.folder, reject)
        self._server: asyncio.Server | None = None

    async def start(self) -> MailCatcher:
        self.folder.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.handler, hostname="sebaya-catcher", data_size_limit=25_000_000),
            self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MailCatcher:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def messages(self) -> list[CaughtMessage]:
        return read_messages(self.folder)


@dataclass(frozen=True)
class CaughtMessage:
    path: Path
    subject: str
    recipients: list[str]
    received_at: datetime
    message_id: str | None
    delivery_key: str | None
    attachments: list[str]

    def parsed(self) -> EmailMessage:
        return _parse(self.path)


def _parse(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        parsed: Any = email.message_from_binary_file(fh, policy=email.policy.default)
    return parsed


def read_messages(folder: Path) -> list[CaughtMessage]:
    """Every caught message, oldest first."""
    out = []
    for path in sorted(Path(folder).glob("*.eml")):
        msg = _parse(path)
        try:
            received = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
        except (TypeError, ValueError):
            received = None
        out.append(CaughtMessage(
            path=path,
            subject=str(msg["Subject"] or ""),
            recipients=[a.strip() for a in str(msg[RECIPIENTS_HEADER] or "").split(",")
                        if a.strip()],
            received_at=received or datetime.fromtimestamp(path.stat().st_mtime, UTC),
            # Long values are folded onto the next line; unfolded they keep the leading space.
            message_id=str(msg["Message-ID"]).strip() if msg["Message-ID"] else None,
            delivery_key=(str(msg["X-Sebaya-Delivery"]).strip()
                          if msg["X-Sebaya-Delivery"] else None),
            attachments=[f"{part.get_filename()} ({part.get_content_type()})"
                         for part in msg.iter_attachments()],
        ))
    return out


async def _serve(folder: Path, host: str, port: int, reject: list[str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with MailCatcher(folder, host, port, reject) as catcher:
        print(f"mail catcher listening on {host}:{catcher.port}, saving to {folder}", flush=True)
        await stop.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m delivery.catcher",
                                     description="Local SMTP server that saves .eml files.")
    parser.add_argument("--dir", type=Path, required=True, help="folder for the .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--reject", action="append", default=[], metavar="ADDRESS",
                        help="answer 550 for this recipient (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    asyncio.run(_serve(args.dir, args.host, args.port, args.reject))


if __name__ == "__main__":
    main()
