"""A reminder burst: 10,000 meeting reminders due in the same minute (5,000 pairings, both
sides), delivered through Sebaya's path to a local SMTP catcher, against bare aiosmtplib
sending the same 10,000 messages to the same catcher in the same run.

Ours is the whole path a pairing's ``record_and_notify`` takes: one ``send_notifications``
call per pairing (its two reminders), claiming each key in ``deliveries``, looking up
contacts and the program's language, rendering text + HTML, sending over the SMTP channel's
kept-open connections and marking each delivery sent. The baseline only sends prebuilt
messages over the same number of connections. Both talk to one catcher process that writes
every message to disk.

    .venv/bin/python bench/notify.py [--reminders 10000] [--connections 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiosmtplib
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities.notify import NotificationActivities, SendNotificationsInput  # noqa: E402
from delivery.channels import Contact, Delivery, SmtpChannel  # noqa: E402
from delivery.message import Renderer  # noqa: E402
from delivery.routing import Router  # noqa: E402
from eventstore.migrate import migrate  # noqa: E402
from intake import load_program  # noqa: E402

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
COHORT = "bench"
SENDER = "Sebaya <noreply@sebaya.bench>"
SENDER_ADDRESS = "noreply@sebaya.bench"
# Pairings whose record_and_notify run at once: the worker's local activity slots.
CONCURRENT_CALLS = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def _start_catcher(folder: Path) -> tuple[asyncio.subprocess.Process, int]:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "delivery.catcher", "--dir", str(folder), "--port", str(port),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)
    return proc, port


def _reminders(pairs: int, round_no: int) -> list[list[Delivery]]:
    batches = []
    for i in range(pairs):
        mentor, mentee = f"M{i:05d}", f"E{i:05d}"
        pairing = f"{COHORT}.{mentee}.{mentor}.1"
        event = uuid.uuid5(uuid.NAMESPACE_URL, f"{round_no}/{pairing}")
        batches.append([
            Delivery(idempotency_key=f"{event}:{me}:reminder_meeting", recipient=me,
                     template="reminder_meeting",
                     data={"pairing_id": pairing, "cohort_id": COHORT, "partner_id": other,
                           "due_at": "2027-02-01T03:00:00+00:00", "reference": "m5",
                           "sequence": 1})
            for me, other in ((mentor, mentee), (mentee, mentor))
        ])
    return batches


async def _ours(pool: asyncpg.Pool, port: int, batches: list[list[Delivery]],
                connections: int) -> float:
    smtp = SmtpChannel("127.0.0.1", port, sender=SENDER, tls="none", connections=connections)
    notify = NotificationActivities(pool, Router(email=smtp),
                                    renderer=Renderer("https://sebaya.bench"))
    gate = asyncio.Semaphore(CONCURRENT_CALLS)
    sent = 0

    async def one(batch: list[Delivery]) -> None:
        nonlocal sent
        async with gate:
            result = await notify.send_notifications(SendNotificationsInput(deliveries=batch))
            sent += result.sent

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in batches))
    elapsed = time.perf_counter() - started
    await notify.aclose()
    expected = sum(len(b) for b in batches)
    if sent != expected:
        errors = await pool.fetch("SELECT last_error, count(*) FROM deliveries "
                                  "WHERE status <> 'sent' GROUP BY 1")
        raise AssertionError(f"ours sent {sent} of {expected}: {[tuple(r) for r in errors]}")
    return expected / elapsed


async def _baseline(port: int, messages: list[tuple[str, bytes]], connections: int) -> float:
    shares = [messages[i::connections] for i in range(connections)]

    async def one_connection(share: list[tuple[str, bytes]]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await smtp.connect()
        for recipient, message in share:
            await smtp.sendmail(SENDER_ADDRESS, [recipient], message)
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(s) for s in shares))
    return len(messages) / (time.perf_counter() - started)


async def bench(dsn: str, reminders: int, connections: int) -> None:
    await migrate(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    assert pool is not None
    mail = Path(tempfile.mkdtemp(prefix="sebaya-bench-mail-"))
    catcher, port = await _start_catcher(mail)
    try:
        pairs = reminders // 2
        program = load_program(ROOT / "examples" / "program.yaml")
        await pool.execute(
            "INSERT INTO cohorts (cohort_id, program, people_digest) VALUES ($1, $2, 'bench')",
            COHORT, program.model_dump_json())
        await pool.executemany(
            "INSERT INTO participants (employee_id, name, email, timezone) "
            "VALUES ($1, $2, $3, 'Asia/Jakarta')",
            [(f"{p}{i:05d}", f"Orang {p}{i:05d}", f"{p.lower()}{i:05d}@example.co.id")
             for i in range(pairs) for p in ("M", "E")])

        # The baseline's messages: the same rendered reminders, built before the clock starts.
        renderer = Renderer("https://sebaya.bench")
        builder = SmtpChannel("127.0.0.1", port, sender=SENDER, tls="none")
        messages = []
        for batch in _reminders(pairs, 0):
            for d in batch:
                contact = Contact(recipient=d.recipient, name=f"Orang {d.recipient}",
                                  email=f"{d.recipient.lower()}@example.co.id",
                                  timezone="Asia/Jakarta")
                message = renderer.render(d.template, d.data, language="id",
                                          recipient=d.recipient, name=contact.name,
                                          partner=f"Orang {d.data['partner_id']}",
                                          program=program.name, timezone=contact.timezone)
                assert contact.email is not None
                messages.append((contact.email, builder.build(contact, d, message)))

        ours_rates, base_rates = [], []
        for round_no in (1, 2):  # alternate, keep the best of each: the machine is shared
            base_rates.append(await _baseline(port, messages, connections))
            ours_rates.append(await _ours(pool, port, _reminders(pairs, round_no), connections))
            print(f"round {round_no}: ours {ours_rates[-1]:.0f}/s, "
                  f"baseline {base_rates[-1]:.0f}/s", file=sys.stderr)
        caught = await asyncio.to_thread(lambda: sum(1 for _ in mail.glob("*.eml")))
        assert caught == 4 * pairs * 2, f"catcher holds {caught} messages"
        ours, baseline = max(ours_rates), max(base_rates)
        print(json.dumps({"bench": "reminder_burst", "ours": round(ours, 1),
                          "baseline": round(baseline, 1), "unit": "per s",
                          "ratio": round(ours / baseline, 3)}))
    finally:
        catcher.terminate()
        await catcher.wait()
        shutil.rmtree(mail, ignore_errors=True)
        await pool.close()


async def main(reminders: int, connections: int) -> None:
    server_dsn = os.environ.get("SEBAYA_DATABASE_URL", DEFAULT_DSN)
    scratch = f"sebaya_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
    finally:
        await admin.close()
    try:
        await bench(_with_database(server_dsn, scratch), reminders, connections)
    finally:
        admin = await asyncpg.connect(server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        finally:
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.reminders, args.connections))
