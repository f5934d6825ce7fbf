"""Both languages say everything: every key in Indonesian and English, every template's
words present in both, and every domain refusal code explained on the pages."""

from __future__ import annotations

import re
from pathlib import Path

from web.i18n import LANGUAGES, MESSAGES, pick_language
from web.problems import DOMAIN_CODES

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"


def test_every_key_in_both_languages() -> None:
    assert set(MESSAGES["id"]) == set(MESSAGES["en"])
    for lang in LANGUAGES:
        assert all(text.strip() for text in MESSAGES[lang].values())


def test_every_literal_key_used_by_a_template_exists() -> None:
    used = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"t\('([a-z_]*[a-z])'[,)]", path.read_text(encoding="utf-8")))
    assert used and used <= set(MESSAGES["en"]), used - set(MESSAGES["en"])


def test_refusals_participants_meet_are_explained() -> None:
    participant_codes = {"goals_required_first", "window_not_open", "already_submitted",
                         "pairing_closed", "not_allowed_now", "invalid_command",
                         "unknown_topic", "unknown_goal", "unknown_meeting"}
    assert participant_codes <= set(DOMAIN_CODES)
    for code in participant_codes:
        assert f"err_{code}" in MESSAGES["id"]


def test_language_choice() -> None:
    assert pick_language("en", "id", "id-ID", "id") == "en"
    assert pick_language(None, "en", "id-ID", "id") == "en"
    assert pick_language(None, None, "en-GB,en;q=0.9", "id") == "en"
    assert pick_language(None, None, "fr-FR", "id") == "id"
    assert pick_language("xx", None, None, "en") == "en"
