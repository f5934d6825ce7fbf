"""people.csv ``notify_via``: optional, validated with file/line/column, stored with the
contact, and routing follows it."""

from __future__ import annotations

import csv
from pathlib import Path

import asyncpg

from adapters.roster import register_cohort
from delivery.channels import Contact, LogChannel, SmtpChannel, WebhookChannel
from delivery.routing import Router
from domain.people import NotifyPreference
from domain.program import NotificationPolicy, NotifyVia
from intake import load_program
from intake.people_csv import check_people

ROOT = Path(__file__).resolve().parents[2]


def _people_with(tmp_path: Path, values: dict[str, str]) -> Path:
    with (ROOT / "examples" / "people.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    header.append("notify_via")
    for row in body:
        row.append(values.get(row[0], ""))
    out = tmp_path / "people.csv"
    with out.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    return out


def test_notify_via_is_optional_and_validated(tmp_path: Path) -> None:
    program = load_program(ROOT / "examples" / "program.yaml")
    people, problems = check_people(ROOT / "examples" / "people.csv", program)
    assert not problems and all(p.notify_via is None for p in people)

    path = _people_with(tmp_path, {"E0001": "Chat", "E0002": "email", "E0003": "pigeon"})
    people, problems = check_people(path, program)
    assert [(p.line, p.column, p.message) for p in problems] == [
        (4, "notify_via", "notify_via must be 'email' or 'chat' (or empty), got 'pigeon'")]
    assert problems[0].file.endswith("people.csv")

    path = _people_with(tmp_path, {"E0001": "Chat", "E0002": "email"})
    people, problems = check_people(path, program)
    assert not problems
    via = {p.employee_id: p.notify_via for p in people}
    assert via["E0001"] is NotifyPreference.CHAT and via["E0002"] is NotifyPreference.EMAIL


async def test_preference_is_stored_with_the_contact(db_pool: asyncpg.Pool,
                                                     tmp_path: Path) -> None:
    program = load_program(ROOT / "examples" / "program.yaml")
    people, problems = check_people(_people_with(tmp_path, {"E0001": "chat"}), program)
    assert not problems
    await register_cohort(db_pool, "c1", program, people)
    stored = dict(await db_pool.fetch("SELECT employee_id, notify_via FROM participants "
                                      "WHERE employee_id IN ('E0001', 'E0002')"))
    assert stored == {"E0001": "chat", "E0002": None}


def test_routing_levels() -> None:
    email = SmtpChannel("127.0.0.1", 25, sender="s@x.test", tls="none")
    chat = WebhookChannel("http://127.0.0.1:9/hook")
    log = LogChannel()
    router = Router(email=email, chat=chat, log=log)
    person = Contact(recipient="E1", email="e1@x.test")
    assert router.route(person) is email  # deployment default: e-mail when configured
    assert router.route(person.model_copy(update={"notify_via": "chat"})) is chat
    assert router.route(person, NotificationPolicy(channel=NotifyVia.CHAT)) is chat
    # The program may switch personal preferences off.
    no_pref = NotificationPolicy(channel=NotifyVia.EMAIL, personal_preference=False)
    assert router.route(person.model_copy(update={"notify_via": "chat"}), no_pref) is email
    # No address: chat instead; nothing configured: the log.
    assert router.route(Contact(recipient="E2")) is chat
    assert Router(log=log).route(person) is log
    # Chat wanted but no webhook configured: e-mail.
    assert Router(email=email, log=log).route(
        person.model_copy(update={"notify_via": "chat"})) is email
