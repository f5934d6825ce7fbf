"""Every notification kind renders in every language; HTML never lets markup through."""

from __future__ import annotations

import re
from typing import Any

import pytest

from delivery.message import COORDINATOR_DIGEST, MAGIC_LINK, Renderer, UnknownTemplate
from domain.events import ReminderKind

PAYLOAD = '<script>alert("x")</script>'
DOMAIN_KINDS = [
    "pairing_matched", *(f"reminder_{k.value}" for k in ReminderKind), "meeting_rescheduled",
    "nudge_meetings_missed", "escalation", "no_fault_exit_offered", "pairing_exit_report",
    "pairing_ended_neutral", "pairing_completed",
]
DATA: dict[str, Any] = {
    "pairing_id": "c1.E2.E1.1", "role": "mentor", "due_at": "2027-02-01T03:00:00+00:00",
    "reference": "m3", "sequence": 1, "meeting_no": 4,
    "scheduled_at": "2027-02-03T07:30:00+00:00", "missed": 2, "initiated_by": "mentee",
    "reason": "not_a_fit", "phase": "running", "url": "https://sebaya.test/login?t=abc",
    "expires_minutes": 15, "cohort_id": "c1", "period": "2027-W05",
    "counts": {"running": 10}, "attention": [{"pairing_id": "c1.E2.E1.1", "text": PAYLOAD}],
}
ALL_KINDS = [*DOMAIN_KINDS, MAGIC_LINK, COORDINATOR_DIGEST]


def test_every_kind_has_a_template_in_every_language() -> None:
    renderer = Renderer()
    assert renderer.languages() == ["en", "id"]
    for lang in renderer.languages():
        assert renderer.kinds(lang) == sorted(ALL_KINDS)


@pytest.mark.parametrize("language", ["id", "en"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_renders_and_escapes(kind: str, language: str) -> None:
    recipient = "coordinator:c1" if kind in {"escalation", "pairing_exit_report",
                                             COORDINATOR_DIGEST} else "E1"
    msg = Renderer("https://sebaya.test").render(
        kind, DATA, language=language, recipient=recipient, name=PAYLOAD, partner=PAYLOAD,
        pair=PAYLOAD, program="Onboarding", timezone="Asia/Jakarta")
    assert msg.subject and "\n" not in msg.subject and "{{" not in msg.text
    assert msg.language == language and f'<html lang="{language}">' in msg.html
    # The plain-text part shows the words as typed; the HTML part never contains them raw.
    assert PAYLOAD in msg.text
    assert "<script>" not in msg.html and "&lt;script&gt;" in msg.html
    assert msg.link is not None and msg.link in msg.text
    # Each message says which pairing it is about (or is the sign-in link / digest).
    if kind not in {MAGIC_LINK, COORDINATOR_DIGEST}:
        assert "c1.E2.E1.1" in msg.link
    # The other language's greeting never leaks in.
    other = "Hello" if language == "id" else "Halo"
    assert not re.search(rf"\b{other}\b", msg.text)


def test_dates_in_the_readers_time_zone_and_language() -> None:
    r = Renderer()
    wib = r.render("reminder_meeting", DATA, language="id", timezone="Asia/Jakarta")
    wit = r.render("reminder_meeting", DATA, language="en", timezone="Asia/Jayapura")
    assert "Senin, 1 Februari 2027 10.00 WIB" in wib.subject
    assert "Monday, 1 February 2027 12:00 WIT" in wit.subject


def test_neutral_notice_never_mentions_a_reason() -> None:
    # Even if a reason were put in its data by mistake, the template has no place for it.
    for lang in ("id", "en"):
        msg = Renderer().render("pairing_ended_neutral", {**DATA, "reason": "not_a_fit"},
                                language=lang, partner="Sari")
        for part in (msg.subject, msg.text, msg.html):
            assert "not_a_fit" not in part and "mentee" not in part


def test_unknown_kind_or_language() -> None:
    with pytest.raises(UnknownTemplate):
        Renderer().render("nope", {}, language="id")
    with pytest.raises(UnknownTemplate):
        Renderer().render("pairing_completed", {}, language="fr")
