"""Real receivers for delivery tests: a webhook endpoint over plain asyncio HTTP/1.1, and
helpers to register people and programs the way intake does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each POST with the next status of ``script`` (then 200), recording them all."""

    script: list[int] = field(default_factory=list)
    delay: Callable[[int], float] = lambda n: 0.0
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                n = len(self.received)
                self.received.append(Received(headers, body))
                await asyncio.sleep(self.delay(n))
                status = self.script[n] if n < len(self.script) else 200
                reply = b'{"ok":true}' if status < 400 else b'{"error":"scripted"}'
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(reply)}\r\n\r\n".encode() + reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def add_person(pool: asyncpg.Pool, employee_id: str, name: str, email: str | None,
                     *, timezone: str = "Asia/Jakarta", notify_via: str | None = None) -> None:
    await pool.execute(
        "INSERT INTO participants (employee_id, name, email, timezone, notify_via) "
        "VALUES ($1, $2, $3, $4, $5)", employee_id, name, email, timezone, notify_via)


async def add_cohort(pool: asyncpg.Pool, cohort_id: str, program_json: str) -> None:
    await pool.execute(
        "INSERT INTO cohorts (cohort_id, program, people_digest) VALUES ($1, $2::jsonb, 'x')",
        cohort_id, program_json)


async def deliveries(pool: asyncpg.Pool) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM deliveries")
    return {r["idempotency_key"]: r for r in rows}
