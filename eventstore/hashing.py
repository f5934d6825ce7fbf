"""The canonical form of an event and its SHA-256 chain link.

Pure and database-free on purpose: the offline bundle verifier re-implements nothing, it
imports this module. ``docs/eventstore.md`` specifies the same rules in prose so an auditor can
re-implement them in another language.

Canonical JSON (a deterministic subset of JSON, UTF-8 encoded before hashing):

* objects: keys must be strings, sorted by Unicode code point, no duplicates;
* no whitespace anywhere (``,`` and ``:`` as separators);
* strings: literal UTF-8 except ``"`` -> ``\\"``, ``\\`` -> ``\\\\``, the short escapes
  ``\\b \\f \\n \\r \\t`` and ``\\u00XX`` (lower-case hex) for the other characters below U+0020;
  U+0000 and lone surrogates are refused (PostgreSQL's jsonb cannot store them);
* numbers: the exact decimal value, written positionally without exponent, without trailing
  fractional zeros and without a trailing ``.``; ``-0`` is ``0``. There is no int/float
  distinction (jsonb has none either: ``1.0`` is stored as numeric and may read back as ``1``).
  A binary float stands for the decimal its shortest ``repr`` denotes, which is also what
  PostgreSQL stores, so the form is identical before insert and after read-back. NaN and
  infinities are refused;
* ``true``, ``false``, ``null`` as usual; arrays keep their order.
"""

from __future__ import annotations

import hashlib
import json.encoder
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

#: ``prev_hash`` of version 1 of every stream.
GENESIS_HASH = "0" * 64

# The C implementation of the ``ensure_ascii=False`` string encoder: exactly the escaping rules
# stated above, at C speed (appending events hashes every string of every payload).
_encode_str = json.encoder.encode_basestring

#: A string's canonical JSON text, quotes included (no U+0000 check: see canonical_json).
#: The C function itself, not a wrapper: it runs several times per appended event.
encode_json_string = _encode_str


class CanonicalFormError(ValueError):
    """A value has no canonical JSON form; ``path`` says where (``a.b[2]``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path or '<root>'}: {reason}")


class _Refused(Exception):
    """Internal: carries the failing location outwards, one segment per container level,
    so the happy path never builds path strings."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.segments: list[str] = []


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (JSON-compatible Python data)."""
    out: list[str] = []
    try:
        _encode(value, out)
    except _Refused as refused:
        raise CanonicalFormError("".join(reversed(refused.segments)).lstrip("."),
                                 refused.reason) from None
    except RecursionError:
        raise CanonicalFormError("", "nested too deeply") from None
    text = "".join(out)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalFormError("", f"not valid Unicode ({exc.reason})") from None
    return text


# orjson writes plain JSON values (dict with str keys, list, tuple, str, int, float, bool,
# None) as the canonical form does (keys sorted by their UTF-8 bytes, which is code point
# order; no whitespace; literal UTF-8 strings with the same escapes; ints as repr), ten times
# faster than the stdlib's C encoder, except:
# * floats written with an exponent or a trailing ".0", and an escaped U+0000: they leave a
#   trace in the text that the patterns below find (a false positive, say ":1e-3," inside a
#   string, only costs the exact encoder). The exponent pattern wants a whole number token,
#   so that the "4e-8" in many a UUID does not send the document the slow way;
# * NaN and infinities, which orjson writes as null: any "null" goes the exact way too, so a
#   document with nulls costs what it did before orjson;
# * ints beyond 64 bits, non-string keys, lone surrogates: orjson refuses them (TypeError).
# Subclasses of str/int/dict/list, datetimes and dataclasses are passed through to no default,
# so orjson refuses them and the exact encoder decides. UUID and Enum objects, which orjson
# would write, are not JSON values: the caller promises a JSON document.
_ORJSON_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
                   | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)
_FLOAT_TRAILING_ZERO = re.compile(r"\.0[,\]}]")
_FLOAT_EXPONENT = re.compile(r"[:,\[]-?\d+(?:\.\d+)?e[-+]\d+[,\]}]")


def _needs_exact_encoder(text: str) -> bool:
    # Substring tests first: they run at memchr speed, the patterns only when they could match.
    return ("\\u0000" in text
            or "null" in text
            or (".0" in text and _FLOAT_TRAILING_ZERO.search(text) is not None)
            or (("e-" in text or "e+" in text) and _FLOAT_EXPONENT.search(text) is not None))


def canonical_json_of_document(value: dict[str, Any]) -> str:
    """:func:`canonical_json` of a JSON document (plain dicts with string keys, lists, strings,
    numbers, booleans, null: such as a pydantic ``model_dump(mode="json")``), several times
    faster: written by orjson, with the exact encoder for the rare text orjson would write
    differently. Identical results are a tested property
    (``tests/eventstore/test_eventstore_hashing.py``)."""
    if type(value) is not dict:
        return canonical_json(value)  # the patterns above look for numbers inside containers
    try:
        text = orjson.dumps(value, option=_ORJSON_OPTIONS).decode("utf-8")
    except (orjson.JSONEncodeError, RecursionError):
        # Non-string keys, big ints, surrogates, other types: the exact encoder's own verdict.
        return canonical_json(value)
    if _needs_exact_encoder(text):
        return canonical_json(value)
    return text


def canonical_number(value: int | float) -> str:
    """The canonical text of a JSON number (see the module docstring)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a JSON number")
    if isinstance(value, int):
        return int.__repr__(value)
    if not math.isfinite(value):
        raise ValueError(f"{value!r} has no JSON form")
    if value == 0:
        return "0"
    text = float.__repr__(value)
    if "e" in text:
        # repr switches to exponent form outside [1e-4, 1e16); jsonb never prints exponents.
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def canonical_timestamp(moment: datetime) -> str:
    """An aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (always 6 digits)."""
    if moment.tzinfo is not UTC:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("a canonical timestamp needs a timezone-aware datetime")
        moment = moment.astimezone(UTC)
    # isoformat pads the year to 4 digits (strftime's %Y does not on every libc); in UTC it
    # ends in "+00:00", which becomes "Z".
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def hash_envelope(
    *,
    event_id: UUID | str,
    stream_id: str,
    version: int,
    event_type: str,
    schema_version: int,
    payload: Mapping[str, Any],
    metadata: Mapping[str, Any],
    prev_hash: str,
) -> dict[str, Any]:
    """The JSON object whose canonical UTF-8 form is hashed for one event."""
    return {
        "event_id": _canonical_uuid(event_id),
        "metadata": metadata,
        "payload": payload,
        "prev_hash": prev_hash,
        "schema_version": schema_version,
        "stream_id": stream_id,
        "type": event_type,
        "version": version,
    }


def event_hash(
    *,
    event_id: UUID | str,
    stream_id: str,
    version: int,
    event_type: str,
    schema_version: int,
    payload: Mapping[str, Any],
    metadata: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """Hex SHA-256 of the canonical envelope: equal to
    ``sha256(canonical_json(hash_envelope(...)).encode("utf-8")).hexdigest()``."""
    parts = EnvelopeParts.build(
        event_id=event_id,
        stream_id=stream_id,
        version=version,
        event_type=event_type,
        schema_version=schema_version,
        payload_json=canonical_json(payload),
        metadata_json=canonical_json(metadata),
    )
    return parts.link(prev_hash)


@dataclass(frozen=True, slots=True)
class EnvelopeParts:
    """The canonical envelope split around the ``prev_hash`` value.

    An append knows everything but the previous hash before it reaches the stream queue, so the
    client builds these two texts and whoever knows the stream's head links them:
    ``sha256(head + '"' + prev_hash + '"' + tail)``, exactly :meth:`link` (the client itself with
    :func:`link_batch` when it knows the head, else ``eventstore_append_v2`` in the database).
    Keys sort as event_id < metadata < payload < prev_hash < schema_version < stream_id < type <
    version, which puts prev_hash between the two halves.
    """

    head: str
    tail: str

    @classmethod
    def build(
        cls,
        *,
        event_id: UUID | str,
        stream_id: str,
        version: int,
        event_type: str,
        schema_version: int,
        payload_json: str,
        metadata_json: str,
    ) -> EnvelopeParts:
        """``payload_json``/``metadata_json`` must already be canonical JSON texts."""
        # Runs for every appended event, hence the shortcuts: a UUID's text needs no escaping,
        # and a plain int's text is its canonical number (bool is not type int).
        event_id_text = str(event_id) if type(event_id) is UUID else _canonical_uuid(event_id)
        if type(schema_version) is not int:
            schema_version = canonical_number(schema_version)  # type: ignore[assignment]
        if type(version) is not int:
            version = canonical_number(version)  # type: ignore[assignment]
        head = (
            f'{{"event_id":"{event_id_text}"'
            f',"metadata":{metadata_json},"payload":{payload_json},"prev_hash":'
        )
        tail = (
            f',"schema_version":{schema_version}'
            f',"stream_id":{_encode_str(stream_id)},"type":{_encode_str(event_type)}'
            f',"version":{version}}}'
        )
        return cls(head, tail)

    def link(self, prev_hash: str) -> str:
        """The event's hash given the previous event's hash."""
        text = self.head + canonical_json(prev_hash) + self.tail
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def link_batch(parts: list[EnvelopeParts], prev_hash: str) -> list[str]:
    """The hashes of consecutive events, the first linked to ``prev_hash``: what
    ``eventstore_append_v2`` computes in the database, done by the client that knows the head.
    Hashes are 64 hex digits, so a hash's canonical JSON is the hash in quotes."""
    hashes = []
    for part in parts:
        prev_hash = hashlib.sha256(
            (part.head + '"' + prev_hash + '"' + part.tail).encode("utf-8")).hexdigest()
        hashes.append(prev_hash)
    return hashes


def _canonical_uuid(value: UUID | str) -> str:
    return str(value if isinstance(value, UUID) else UUID(value))


def _encode(value: Any, out: list[str]) -> None:
    # Dispatch on the exact type first: this runs for every value of every appended payload,
    # and isinstance() against ABCs such as Mapping is several times slower.
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise _Refused("U+0000 cannot be stored in PostgreSQL jsonb")
        out.append(_encode_str(value))
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is dict:
        _encode_object(value, out)
    elif kind is list or kind is tuple:
        _encode_array(value, out)
    elif kind is float:
        out.append(_number(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    # Subclasses (StrEnum, IntEnum, OrderedDict, ...) encode as their plain values.
    elif isinstance(value, str):
        _encode(str.__str__(value), out)
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, Mapping):
        _encode_object(value, out)
    elif isinstance(value, list | tuple):
        _encode_array(value, out)
    else:
        raise _Refused(f"{kind.__name__} is not a JSON value")


def _number(value: int | float) -> str:
    try:
        return canonical_number(value)
    except ValueError as exc:  # NaN, infinities, ints beyond Python's digit limit
        raise _Refused(str(exc)) from None


def _encode_object(value: Mapping[Any, Any], out: list[str]) -> None:
    try:
        keys = sorted(value)
    except TypeError:  # mixed key types do not even sort
        raise _Refused("object keys must be strings") from None
    out.append("{")
    first = True
    for key in keys:
        if type(key) is not str:
            if not isinstance(key, str):
                raise _Refused(f"object key {key!r} is not a string")
            key = str.__str__(key)
        if "\x00" in key:
            raise _Refused("U+0000 cannot be stored in PostgreSQL jsonb")
        if first:
            first = False
        else:
            out.append(",")
        out.append(_encode_str(key))
        out.append(":")
        try:
            _encode(value[key], out)
        except _Refused as refused:
            refused.segments.append(f".{key}")
            raise
    out.append("}")


def _encode_array(value: list[Any] | tuple[Any, ...], out: list[str]) -> None:
    out.append("[")
    for index, item in enumerate(value):
        if index:
            out.append(",")
        try:
            _encode(item, out)
        except _Refused as refused:
            refused.segments.append(f"[{index}]")
            raise
    out.append("]")
