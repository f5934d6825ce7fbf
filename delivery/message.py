"""What a notification says: a rendered :class:`Message`, and the :class:`Renderer` that
turns a notification kind and its data into one, in the program's language.

Templates live in ``delivery/templates/<lang>/<kind>.j2``. Each defines two blocks,
``subject`` and ``body``, and extends the layout it is given: the same template is rendered
once without escaping for the plain-text part and once with autoescaping into the HTML
layout, so a participant's words (a goal title, a name) can never inject markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateNotFound
from markupsafe import Markup, escape

from domain.program import Language

TEMPLATE_DIR = Path(__file__).parent / "templates"

# Kinds not emitted by domain/notifications.py but sent through the same path.
MAGIC_LINK = "magic_link"
COORDINATOR_DIGEST = "coordinator_digest"


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message; ``content_type`` may carry parameters, e.g.
    ``text/calendar; method=REQUEST`` for a calendar invitation."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Message:
    """One rendered notification, channel-neutral. ``link`` is the web app page it points at."""

    kind: str
    language: str
    subject: str
    text: str
    html: str
    link: str | None = None
    attachments: tuple[Attachment, ...] = field(default=())

    def with_attachment(self, attachment: Attachment) -> Message:
        return replace(self, attachments=(*self.attachments, attachment))


class UnknownTemplate(LookupError):
    """No template for this notification kind in this language."""


_MONTHS = {
    "id": ["Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
           "September", "Oktober", "November", "Desember"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"],
}
_WEEKDAYS = {
    "id": ["Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}


def format_when(value: str | datetime, language: str, timezone: str | None) -> str:
    """A due time as people read it, in their own time zone: 'Senin, 7 Desember 2026 10.00
    WIB' / 'Monday, 7 December 2026 10:00 WIB'. Unparseable values are shown as given."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is not None and timezone:
        value = value.astimezone(ZoneInfo(timezone))
    lang = language if language in _MONTHS else "en"
    day = f"{_WEEKDAYS[lang][value.weekday()]}, {value.day} {_MONTHS[lang][value.month - 1]} "
    clock = f"{value.hour:02d}.{value.minute:02d}" if lang == "id" else (
        f"{value.hour:02d}:{value.minute:02d}")
    zone = value.tzname() if value.tzinfo is not None else ""
    return f"{day}{value.year} {clock} {zone}".rstrip()


def _paragraphs(body: str) -> Markup:
    """Blank-line separated text -> <p> blocks. ``body`` is already escaped (autoescape)."""
    safe = body if isinstance(body, Markup) else escape(body)
    blocks = [b.strip() for b in safe.split("\n\n") if b.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(b.split("\n"))) for b in blocks
    )


class Renderer:
    """Renders every notification kind in every language found under ``template_dir``.

    ``web_url`` (``SEBAYA_WEB_URL``) is the web app's base URL: when set, a message links to
    the pairing's (or, for a coordinator, the cohort's) page there.
    """

    def __init__(self, web_url: str | None = None, template_dir: Path = TEMPLATE_DIR) -> None:
        self._web_url = web_url.rstrip("/") if web_url else None
        loader = FileSystemLoader(str(template_dir))
        common: dict[str, Any] = {"keep_trailing_newline": False, "trim_blocks": True,
                                  "lstrip_blocks": True, "undefined": StrictUndefined}
        # Plain text is never escaped: it is not markup.
        self._text = Environment(loader=loader, autoescape=False, **common)
        self._html = Environment(loader=loader, autoescape=True, **common)
        self._html.filters["paragraphs"] = _paragraphs
        self._dir = template_dir

    def languages(self) -> list[str]:
        return sorted(p.name for p in self._dir.iterdir() if p.is_dir())

    def kinds(self, language: str) -> list[str]:
        return sorted(p.stem for p in (self._dir / language).glob("*.j2")
                      if not p.name.startswith("_"))

    def link_for(self, kind: str, data: Mapping[str, Any], recipient: str) -> str | None:
        if kind == MAGIC_LINK:
            url = data.get("url")
            return str(url) if url else None
        if self._web_url is None:
            return None
        if recipient.startswith("coordinator:"):
            cohort = data.get("cohort_id") or recipient.removeprefix("coordinator:")
            pairing = data.get("pairing_id")
            if pairing:
                return f"{self._web_url}/cohorts/{cohort}/pairings/{pairing}"
            return f"{self._web_url}/cohorts/{cohort}"
        if data.get("pairing_id"):
            return f"{self._web_url}/pairings/{data['pairing_id']}"
        return self._web_url

    def render(
        self,
        kind: str,
        data: Mapping[str, Any],
        *,
        language: Language | str,
        recipient: str = "",
        name: str | None = None,
        partner: str | None = None,
        pair: str | None = None,
        program: str | None = None,
        timezone: str | None = None,
    ) -> Message:
        """``name`` is the recipient's, ``partner`` the other side's, ``pair`` a label of the
        pairing for coordinators ('Sari (mentee) & Budi (mentor)')."""
        lang = str(language)
        link = self.link_for(kind, data, recipient)
        context = {
            "data": dict(data),
            "name": name,
            "partner": partner,
            "pair": pair or data.get("pairing_id"),
            "program": program,
            "link": link,
            "when": lambda v: format_when(v, lang, timezone),
        }
        text_t = self._template(self._text, lang, kind)
        html_t = self._template(self._html, lang, kind)
        subject = "".join(text_t.blocks["subject"](text_t.new_context(context))).strip()
        text = text_t.render(layout=f"{lang}/_layout.txt.j2", **context).strip() + "\n"
        html = html_t.render(layout=f"{lang}/_layout.html.j2", subject=subject, **context)
        return Message(kind=kind, language=lang, subject=" ".join(subject.split()), text=text,
                       html=html, link=link)

    @staticmethod
    def _template(env: Environment, language: str, kind: str) -> Template:
        try:
            return env.get_template(f"{language}/{kind}.j2")
        except TemplateNotFound as exc:
            raise UnknownTemplate(f"no template {kind!r} in language {language!r}") from exc
