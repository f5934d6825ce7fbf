"""Deliver notifications: claim each by its key, render it in the program's language, route
it, hand it to a channel, record what happened. See docs/notifications.md for the argument.

Exactly once, per key: a key is claimed in ``deliveries`` before anything is sent and marked
``sent`` once the channel accepted it (one statement per call, after the call's sends: a call
holds one or two deliveries); a key found ``sent`` is never sent again. The one window left
is a crash between "the channel accepted" and "marked sent": the key stays ``pending`` and
the next attempt sends it again, with the same Message-ID / Idempotency-Key, so the receiver
can recognise the duplicate.

A failing channel never fails the caller: the failure is recorded (``failed``, retried later
with backoff, at most :data:`MAX_ATTEMPTS` times, or ``dead`` when retrying cannot help) and
the call returns. Only a database failure raises, so the activity is retried.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from delivery.channels import Contact, Delivery, DeliveryFailed, NotificationChannel
from delivery.message import Message, Renderer
from delivery.routing import Router
from domain.program import NotificationPolicy, ProgramSpec

log = structlog.get_logger("sebaya.delivery")

# Sends after the first: then the delivery is dead. Waits between them grow: 5, 15, 45, 135 min.
MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(minutes=5)
RETRY_FACTOR = 3
# One send may take this long before it counts as a transient failure; well inside the
# record_and_notify local activity's 30 s, so a slow provider never times the pairing out.
SEND_DEADLINE = 20.0
# Failures of the database connection itself (cut, server restarting, a protocol left
# mid-operation by a cut): transient, unlike any other unexpected error while rendering.
_CONNECTION_LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.exceptions.InternalClientError,
                    asyncpg.exceptions.OperatorInterventionError)
COORDINATOR_PREFIX = "coordinator:"

# Adds to a rendered message before it is sent (e.g. a calendar invitation). May be async.
MessageDecorator = Callable[[Delivery, Contact, Message], "Message | Awaitable[Message]"]


@dataclass(frozen=True)
class DispatchResult:
    sent: int = 0
    already_sent: int = 0
    failed: int = 0
    dead: int = 0
    suppressed: int = 0

    def __add__(self, other: DispatchResult) -> DispatchResult:
        return DispatchResult(*(a + b for a, b in zip(self._t(), other._t(), strict=True)))

    def _t(self) -> tuple[int, ...]:
        return (self.sent, self.already_sent, self.failed, self.dead, self.suppressed)


def pairing_sides(pairing_id: str, cohort_id: str) -> list[tuple[str, str]]:
    """Possible (mentee, mentor) of ``<cohort>.<mentee>.<mentor>.<attempt>`` (ids may contain
    dots, so more than one split can be possible; the caller keeps the one it knows)."""
    rest = pairing_id.removeprefix(f"{cohort_id}.")
    parts = rest.split(".")
    if rest == pairing_id or len(parts) < 3:
        return []
    body = parts[:-1]
    return [(".".join(body[:i]), ".".join(body[i:])) for i in range(1, len(body))]


@dataclass(frozen=True)
class _Cohort:
    cohort_id: str
    program: ProgramSpec | None


@dataclass(frozen=True)
class _Batch:
    """Claimed deliveries with everything looked up for them, by idempotency key."""

    todo: list[Delivery]
    cohorts: dict[str, _Cohort | None]
    contacts: dict[str, Contact]


@dataclass(frozen=True)
class _Outcome:
    key: str
    outcome: str  # sent | failed | suppressed
    channel: str | None = None
    provider_id: str | None = None
    error: str | None = None
    permanent: bool = False


class Dispatcher:
    """Sends deliveries through ``router``'s channels; one per process, shared."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        router: Router,
        renderer: Renderer,
        *,
        decorators: Sequence[MessageDecorator] = (),
    ) -> None:
        self._pool = pool
        self._router = router
        self._renderer = renderer
        self._decorators = list(decorators)
        self._cohorts: dict[str, _Cohort] = {}

    # -- the main path --------------------------------------------------------------------

    async def deliver(self, deliveries: Sequence[Delivery]) -> DispatchResult:
        if not deliveries:
            return DispatchResult()
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """
                INSERT INTO deliveries (idempotency_key, recipient, template, payload, status)
                SELECT k, r, t, p::jsonb, 'pending'
                  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d(k, r, t, p)
                ON CONFLICT (idempotency_key) DO UPDATE SET attempts = deliveries.attempts
                RETURNING idempotency_key, status
                """,
                [d.idempotency_key for d in deliveries], [d.recipient for d in deliveries],
                [d.template for d in deliveries], [json.dumps(d.data) for d in deliveries],
            )
            status = {r["idempotency_key"]: r["status"] for r in rows}
            todo = [d for d in deliveries if status.get(d.idempotency_key) == "pending"]
            batch = await self._prepare(conn, todo)
        result = await self._send_all(batch)
        return result + DispatchResult(already_sent=len(deliveries) - len(todo))

    async def retry(self, keys: Sequence[str] | None = None, *, due_only: bool = False
                    ) -> DispatchResult:
        """Send again: the given keys (failed or dead), or every failed one (``keys=None``;
        ``due_only``: only those whose backoff has elapsed, as the background retry does).
        A key given explicitly gets a fresh allowance of attempts."""
        async with self._pool.acquire() as conn:
            batch = await self._prepare(conn, await self._reclaim(conn, keys, due_only))
        return await self._send_all(batch)

    async def _reclaim(self, conn: asyncpg.Connection, keys: Sequence[str] | None,
                       due_only: bool) -> list[Delivery]:
        if keys is not None:
            rows = await conn.fetch(
                """
                UPDATE deliveries SET status = 'pending', attempts = 0, updated_at = now()
                 WHERE idempotency_key = ANY($1::text[]) AND status IN ('failed', 'dead')
                RETURNING idempotency_key, recipient, template, payload
                """, list(keys))
        else:
            rows = await conn.fetch(
                """
                UPDATE deliveries SET status = 'pending', updated_at = now()
                 WHERE idempotency_key IN (
                       SELECT idempotency_key FROM deliveries
                        WHERE status = 'failed'
                          AND (NOT $1 OR last_attempt_at IS NULL
                               OR last_attempt_at + $2::interval * power($3, attempts - 1)
                                  <= now())
                        ORDER BY last_attempt_at LIMIT 500
                          FOR UPDATE SKIP LOCKED)
                RETURNING idempotency_key, recipient, template, payload
                """, due_only, RETRY_BASE, RETRY_FACTOR)
        return [Delivery(idempotency_key=r["idempotency_key"], recipient=r["recipient"],
                         template=r["template"], data=json.loads(r["payload"] or "{}"))
                for r in rows]

    async def run_retries(self, every: timedelta) -> None:
        """Retry due failures every ``every`` until cancelled (the worker runs this)."""
        while True:
            await asyncio.sleep(every.total_seconds())
            try:
                result = await self.retry(due_only=True)
                if result != DispatchResult():
                    log.info("delivery retries", **result.__dict__)
            except asyncpg.InterfaceError:
                return  # the pool was closed: the process is shutting down
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("delivery retry sweep failed", error=str(exc))

    # -- sending --------------------------------------------------------------------------

    async def _prepare(self, conn: asyncpg.Connection, todo: Sequence[Delivery]) -> _Batch:
        cohorts = {d.idempotency_key: await self._cohort_of(conn, d) for d in todo}
        return _Batch(list(todo), cohorts, await self._contacts(conn, todo, cohorts))

    async def _send_all(self, batch: _Batch) -> DispatchResult:
        """Send concurrently, then record every outcome in one statement. Holding no database
        connection while talking to providers keeps a slow provider from starving the pool."""
        if not batch.todo:
            return DispatchResult()
        outcomes = await asyncio.gather(*(self._send_one(d, batch) for d in batch.todo))
        rows = await self._pool.fetch(
            """
            UPDATE deliveries d
               SET attempts = d.attempts + CASE WHEN o.outcome = 'suppressed' THEN 0 ELSE 1 END,
                   channel = COALESCE(o.channel, d.channel),
                   status = CASE WHEN o.outcome = 'sent' THEN 'sent'
                                 WHEN o.outcome = 'suppressed' THEN 'suppressed_erased'
                                 WHEN o.permanent OR d.attempts + 1 >= $7 THEN 'dead'
                                 ELSE 'failed' END,
                   provider_message_id = CASE WHEN o.outcome = 'sent' THEN o.provider
                                              ELSE d.provider_message_id END,
                   last_error = o.error,
                   delivered_at = CASE WHEN o.outcome = 'sent' THEN now()
                                       ELSE d.delivered_at END,
                   last_attempt_at = now(), updated_at = now()
              FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                          $6::bool[]) AS o(key, outcome, channel, provider, error, permanent)
             WHERE d.idempotency_key = o.key
            RETURNING d.idempotency_key, d.status, d.channel, o.error
            """,
            [o.key for o in outcomes], [o.outcome for o in outcomes],
            [o.channel for o in outcomes], [o.provider_id for o in outcomes],
            [o.error for o in outcomes], [o.permanent for o in outcomes], MAX_ATTEMPTS)
        counts: collections.Counter[str] = collections.Counter()
        for row in rows:
            counts[row["status"]] += 1
            if row["status"] in ("failed", "dead"):
                log.warning("delivery failed", idempotency_key=row["idempotency_key"],
                            channel=row["channel"], status=row["status"], error=row["error"])
        return DispatchResult(sent=counts["sent"], failed=counts["failed"], dead=counts["dead"],
                              suppressed=counts["suppressed_erased"])

    async def _send_one(self, delivery: Delivery, batch: _Batch) -> _Outcome:
        key = delivery.idempotency_key
        cohort = batch.cohorts[key]
        contact = self._contact_for(delivery, batch.contacts, cohort)
        if contact.erased:
            return _Outcome(key, "suppressed")
        channel: NotificationChannel | None = None

        def failed(reason: str, permanent: bool) -> _Outcome:
            return _Outcome(key, "failed", channel.name if channel else None,
                            error=reason[:1000], permanent=permanent)

        try:
            message = await self._render(delivery, contact, batch.contacts, cohort)
            policy = cohort.program.notifications if cohort and cohort.program else None
            channel = self._router.route(contact, policy or NotificationPolicy())
            provider_id = await asyncio.wait_for(
                channel.send(contact, delivery, message), SEND_DEADLINE)
        except DeliveryFailed as exc:
            return failed(exc.reason, exc.permanent)
        except TimeoutError:
            return failed("send timed out", False)
        except _CONNECTION_LOST as exc:
            # The database went away while the message was being put together (the calendar
            # attachment reads the pairing's events; a connection cut or a restart): nothing
            # is wrong with the message, so it is retried, not given up on.
            return failed(f"{type(exc).__name__}: {exc}", False)
        except Exception as exc:
            # A bug (a template error, an unexpected answer): retrying would fail the same way.
            log.exception("delivery failed unexpectedly", idempotency_key=key)
            return failed(f"{type(exc).__name__}: {exc}", True)
        return _Outcome(key, "sent", channel.name, provider_id)

    async def _render(self, delivery: Delivery, contact: Contact, contacts: dict[str, Contact],
                      cohort: _Cohort | None) -> Message:
        program = cohort.program if cohort else None
        language = delivery.data.get("language") or (program.language if program else "id")
        partner_id, sides = _related(delivery, cohort)
        partner = _name(contacts, partner_id) if partner_id else None
        pair = None
        if sides is not None:
            mentee, mentor = sides
            pair = f"{_name(contacts, mentee)} (mentee) & {_name(contacts, mentor)} (mentor)"
        message = self._renderer.render(
            delivery.template, delivery.data, language=language, recipient=delivery.recipient,
            name=contact.name, partner=partner, pair=pair,
            program=program.name if program else None, timezone=contact.timezone,
        )
        for decorate in self._decorators:
            decorated = decorate(delivery, contact, message)
            message = await decorated if inspect.isawaitable(decorated) else decorated
        return message

    # -- look-ups -------------------------------------------------------------------------

    async def _contacts(self, conn: asyncpg.Connection, todo: Sequence[Delivery],
                        cohorts: dict[str, _Cohort | None]) -> dict[str, Contact]:
        """Contacts of every recipient and of every possible partner, in one query."""
        ids: set[str] = set()
        for d in todo:
            if not d.recipient.startswith(COORDINATOR_PREFIX):
                ids.add(d.recipient)
            partner_id, sides = _related(d, cohorts[d.idempotency_key])
            ids.update(sides or ())
            if partner_id:
                ids.add(partner_id)
        rows = await conn.fetch(
            "SELECT employee_id, name, email, timezone, notify_via, erased_at "
            "FROM participants WHERE employee_id = ANY($1::text[])", list(ids))
        return {r["employee_id"]: Contact(
            recipient=r["employee_id"], name=r["name"], email=r["email"],
            timezone=r["timezone"], notify_via=r["notify_via"],
            erased=r["erased_at"] is not None) for r in rows}

    def _contact_for(self, delivery: Delivery, contacts: dict[str, Contact],
                     cohort: _Cohort | None) -> Contact:
        if delivery.recipient.startswith(COORDINATOR_PREFIX):
            program = cohort.program if cohort else None
            email = program.notifications.coordinator_email if program else None
            return Contact(recipient=delivery.recipient, email=email)
        return contacts.get(delivery.recipient) or Contact(recipient=delivery.recipient)

    async def _cohort_of(self, conn: asyncpg.Connection, delivery: Delivery) -> _Cohort | None:
        """The cohort (and its program) a delivery belongs to; programs never change once a
        cohort is registered, so they are cached for the life of the process."""
        if delivery.recipient.startswith(COORDINATOR_PREFIX):
            probe, exact = delivery.recipient.removeprefix(COORDINATOR_PREFIX), True
        elif delivery.data.get("cohort_id"):
            probe, exact = str(delivery.data["cohort_id"]), True
        elif delivery.data.get("pairing_id"):
            probe, exact = str(delivery.data["pairing_id"]), False
        else:
            return None
        for known in self._cohorts.values():
            if probe == known.cohort_id or (not exact and probe.startswith(f"{known.cohort_id}.")):
                return known
        if exact:
            row = await conn.fetchrow(
                "SELECT cohort_id, program FROM cohorts WHERE cohort_id = $1", probe)
        else:
            row = await conn.fetchrow(
                "SELECT cohort_id, program FROM cohorts WHERE starts_with($1, cohort_id || '.') "
                "ORDER BY length(cohort_id) DESC LIMIT 1", probe)
        if row is None:
            # An unregistered cohort (tests, demos): take the id's first part, no program.
            return None if exact else _Cohort(probe.split(".", 1)[0], None)
        found = self._cohorts[row["cohort_id"]] = _Cohort(row["cohort_id"],
                                                          _program(row["program"]))
        return found

    async def aclose(self) -> None:
        await self._router.aclose()


def _related(delivery: Delivery, cohort: _Cohort | None
             ) -> tuple[str | None, tuple[str, str] | None]:
    """(the recipient's partner, (mentee, mentor) for a coordinator), as far as known."""
    data, recipient = delivery.data, delivery.recipient
    if data.get("partner_id"):
        return str(data["partner_id"]), None
    if data.get("mentor_id") and data.get("mentee_id"):
        return None, (str(data["mentee_id"]), str(data["mentor_id"]))
    # Deliveries recorded before notifications carried these ids: read the pairing id.
    if cohort is not None and data.get("pairing_id"):
        for mentee, mentor in pairing_sides(str(data["pairing_id"]), cohort.cohort_id):
            if recipient.startswith(COORDINATOR_PREFIX):
                return None, (mentee, mentor)
            if recipient in (mentee, mentor):
                return (mentor if recipient == mentee else mentee), None
    return None, None


def _name(contacts: dict[str, Contact], employee_id: str) -> str:
    contact = contacts.get(employee_id)
    return (contact.name if contact and contact.name else None) or employee_id


def _program(raw: Any) -> ProgramSpec | None:
    try:
        return ProgramSpec.model_validate_json(raw) if isinstance(raw, str) else (
            ProgramSpec.model_validate(raw))
    except ValueError:
        log.warning("cohort program unreadable; using defaults")
        return None
