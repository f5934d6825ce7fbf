"""The canonical form: fixed by a known vector, and identical before insert and after the
round trip through PostgreSQL's jsonb (numbers, Unicode, key order, nesting, timestamps)."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from eventstore import EventMetadata, EventStore, InvalidAppend, NewEvent
from eventstore.hashing import (
    GENESIS_HASH,
    CanonicalFormError,
    _needs_exact_encoder,
    canonical_json,
    canonical_json_of_document,
    canonical_number,
    canonical_timestamp,
    event_hash,
    hash_envelope,
)

JAKARTA = timezone(timedelta(hours=7))
VECTOR_ID = uuid.UUID("0f8b9c2e-1a2b-4c3d-8e9f-001122334455")
VECTOR_PAYLOAD = {
    "topics": ["karier", "umpan balik"],
    "duration_minutes": 60,
    "score": 4.5,
    "notes": "café ☕\n",
}
VECTOR_METADATA = EventMetadata(
    actor="employee:E0012",
    occurred_at=datetime(2025, 3, 10, 16, 0, 0, 123456, tzinfo=JAKARTA),
    workflow_id="pairing-P1",
)

# Tricky values: each must keep its canonical form through jsonb.
TRICKY_PAYLOAD: dict[str, Any] = {
    "floats": [0.1, 1.0, -2.5, 1e20, 1e-7, 5e-324, 1.7976931348623157e308, 3.141592653589793,
               123456789.123456789, 2.5e-5, -0.0, 1e16, 12345678901234567.0],
    "ints": [0, -1, 2**53 + 1, 2**70, -(2**63)],
    "strings": ["", "plain", "quote \" backslash \\ slash /", "tab\tnewline\ncr\r",
                "\x01\x1f\x7f", "line\u2028sep", "emoji 🧑‍🤝‍🧑", "e\u0301 vs \u00e9", "עברית",
                "\\u0000 as text"],
    "keys": {"b": 1, "a": 2, "A": 3, "é": 4, "z": 5, "aa": 6, "": 7, "\n": 8, "🙂": 9},
    "nested": {"z": {"y": {"x": [{"b": None, "a": True}, [], {}, [[False]]]}}},
}


def test_known_vector_fixes_the_format() -> None:
    # Change this only together with a migration of every stored hash: it IS the format.
    envelope = hash_envelope(
        event_id=VECTOR_ID, stream_id="pairing-P1", version=1, event_type="MeetingHeld",
        schema_version=2, payload=VECTOR_PAYLOAD, metadata=VECTOR_METADATA.to_document(),
        prev_hash=GENESIS_HASH,
    )
    assert canonical_json(envelope) == (
        '{"event_id":"0f8b9c2e-1a2b-4c3d-8e9f-001122334455",'
        '"metadata":{"actor":"employee:E0012","occurred_at":"2025-03-10T09:00:00.123456Z",'
        '"workflow_id":"pairing-P1"},'
        '"payload":{"duration_minutes":60,"notes":"café ☕\\n","score":4.5,'
        '"topics":["karier","umpan balik"]},'
        '"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
        '"schema_version":2,"stream_id":"pairing-P1","type":"MeetingHeld","version":1}'
    )
    expected = "e5464960186333a0d60afbcc610acd1d4b66e6266a56f3e18efeb852579ec9f9"
    assert hashlib.sha256(canonical_json(envelope).encode("utf-8")).hexdigest() == expected
    assert event_hash(
        event_id=str(VECTOR_ID).upper(), stream_id="pairing-P1", version=1,
        event_type="MeetingHeld", schema_version=2, payload=VECTOR_PAYLOAD,
        metadata=VECTOR_METADATA.to_document(), prev_hash=GENESIS_HASH,
    ) == expected
    # An independent implementation: for this float-light envelope the standard library's
    # sorted, compact, non-ASCII-escaping JSON is the same text.
    stdlib = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(stdlib.encode("utf-8")).hexdigest() == expected


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, "1"), (-0.0, "0"), (0, "0"), (0.1, "0.1"), (1e20, "100000000000000000000"),
        (1e-7, "0.0000001"), (2.5e-5, "0.000025"), (-1.5e300, "-15" + "0" * 299),
        (10**30, "1" + "0" * 30), (123.456, "123.456"), (1e16, "10000000000000000"),
    ],
)
def test_canonical_numbers(number: float, text: str) -> None:
    assert canonical_number(number) == text


def test_canonical_strings_keys_and_timestamps() -> None:
    assert canonical_json({"b": 1, "a": [True, None], "A": "é\n\x01\"\\"}) == (
        '{"A":"é\\n\\u0001\\"\\\\","a":[true,null],"b":1}'
    )
    # Code point order: "A" < "a" < "aa" < "z" < "é" < "🙂".
    assert list(json.loads(canonical_json(TRICKY_PAYLOAD["keys"]))) == [
        "", "\n", "A", "a", "aa", "b", "z", "é", "🙂",
    ]
    moment = datetime(5, 1, 2, 3, 4, 5, 60, tzinfo=JAKARTA)
    assert canonical_timestamp(moment) == "0005-01-01T20:04:05.000060Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_timestamp(datetime(2025, 1, 1))
    with pytest.raises(CanonicalFormError, match=r"a\[0\]\.b: U\+0000"):
        canonical_json({"a": [{"b": "\x00"}]})


def test_event_hash_is_the_hash_of_the_canonical_envelope() -> None:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(), "stream_id": "cohort-7", "version": 42,
        "event_type": "Whatever", "schema_version": 3, "payload": TRICKY_PAYLOAD,
        "metadata": {"actor": "ops:alice", "occurred_at": "2031-01-01T00:00:00.000000Z"},
        "prev_hash": "ab" * 32,
    }
    expected = hashlib.sha256(canonical_json(hash_envelope(**fields)).encode()).hexdigest()
    assert event_hash(**fields) == expected
    assert event_hash(**{**fields, "version": 43}) != expected
    assert event_hash(**{**fields, "prev_hash": "cd" * 32}) != expected


async def test_canonical_form_survives_jsonb(store: EventStore, db_pool: asyncpg.Pool) -> None:
    new = NewEvent(
        event_id=uuid.uuid4(),
        type="Tricky",
        payload=TRICKY_PAYLOAD,
        metadata=EventMetadata(
            actor="ops:alice",
            occurred_at=datetime(2027, 1, 4, 9, 0, 0, 999999, tzinfo=JAKARTA),
            workflow_id="pairing-P9",
            causation_id="update-1",
        ),
    )
    await store.append("pairing-tricky", 0, [new])

    [recorded] = await store.read_stream("pairing-tricky")
    assert canonical_json(recorded.payload) == canonical_json(TRICKY_PAYLOAD)
    assert recorded.metadata == new.metadata
    assert recorded.metadata.occurred_at.tzinfo == UTC
    raw = await db_pool.fetchrow(
        "SELECT payload::text AS p, metadata::text AS m FROM events WHERE event_id = $1",
        new.event_id,
    )
    assert raw is not None
    # jsonb reorders keys and respaces, but the canonical form does not change.
    assert raw["p"] != canonical_json(TRICKY_PAYLOAD)
    assert canonical_json(json.loads(raw["p"])) == canonical_json(TRICKY_PAYLOAD)
    assert json.loads(raw["m"])["occurred_at"] == "2027-01-04T02:00:00.999999Z"
    assert recorded.hash == event_hash(
        event_id=recorded.event_id, stream_id=recorded.stream_id, version=1,
        event_type="Tricky", schema_version=1, payload=recorded.payload,
        metadata=recorded.metadata.to_document(), prev_hash=GENESIS_HASH,
    )
    assert (await store.verify()).ok


async def test_jsonb_written_by_others_hashes_like_ours(db_pool: asyncpg.Pool) -> None:
    # Another writer's spelling of the same numbers (1.0, 1e2, 0.10) reads back as the same
    # canonical text as our own spelling.
    text = await db_pool.fetchval(
        """SELECT '{"b": 1.0, "a": 1e2, "c": 0.10, "d": -0.0}'::jsonb::text"""
    )
    assert canonical_json(json.loads(text)) == canonical_json({"a": 100, "b": 1, "c": 0.1,
                                                               "d": 0})


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        while True:  # any finite double, from random bits
            value = struct.unpack("<d", rng.randbytes(8))[0]
            if value == value and abs(value) != float("inf"):
                return value
    if kind == 1:
        return rng.choice([0, 1, -1, 2**31, -(2**64), rng.randrange(-(10**30), 10**30)])
    if kind == 2:
        alphabet = "aZ09 \"\\/\n\t\x01\x7fé☕🧑\u2028\u0301"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.uniform(-1e6, 1e6)
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        "".join(rng.choice("abAB_é🙂") for _ in range(rng.randrange(1, 4))):
            _random_json(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


async def test_random_documents_round_trip_through_jsonb(db_pool: asyncpg.Pool) -> None:
    rng = random.Random(20250303)
    documents = [{"doc": _random_json(rng)} for _ in range(2000)]
    texts = [canonical_json(doc) for doc in documents]
    back = await db_pool.fetch(
        "SELECT t.ord, t.text::jsonb::text AS j FROM unnest($1::text[]) WITH ORDINALITY "
        "AS t(text, ord) ORDER BY t.ord",
        texts,
    )
    for sent, row in zip(texts, back, strict=True):
        assert canonical_json(json.loads(row["j"])) == sent
        assert canonical_json(json.loads(sent)) == sent


@pytest.mark.parametrize(
    "meta",
    [
        EventMetadata(actor="system", occurred_at=datetime(2025, 1, 1, tzinfo=UTC)),
        EventMetadata(actor="ops:alice", occurred_at=datetime(2030, 6, 1, 23, 59, 59, 1,
                                                              tzinfo=JAKARTA),
                      workflow_id="pairing-P1", run_id="r-1", correlation_id="C1",
                      causation_id="u-\"quoted\"\n"),
        EventMetadata(actor="employee:Ünal ☕", occurred_at=datetime(2025, 1, 1, tzinfo=UTC),
                      causation_id="x"),
    ],
)
def test_metadata_fast_path_matches_the_definition(meta: EventMetadata) -> None:
    assert meta.canonical_json() == canonical_json(meta.to_document())


async def test_unencodable_metadata_is_refused_before_the_database(store: EventStore) -> None:
    bad = NewEvent(
        event_id=uuid.uuid4(), type="Noted", payload={},
        metadata=EventMetadata(actor="ops:\x00", occurred_at=VECTOR_METADATA.occurred_at),
    )
    with pytest.raises(InvalidAppend, match=r"metadata actor: U\+0000"):
        await store.append("pairing-1", 0, [bad])


# --- the fast encoder for registry-normalised payloads ------------------------------------

_TRICKY_FLOATS = (0.0, -0.0, 1.0, -2.0, 0.1, 1e16, 1e-5, 1.5e-7, 123456789.125, 2.5e300,
                  1e15, 9007199254740993.0, -1e-4)
_TRICKY_STRINGS = ("", "plain", "kutipan \"dan\" \\ garis", "tab\tnl\nff\x0cbs\x08", "\x01\x1f",
                   "émoji 😀 ü", "1e-3 and 2.0, inside", "3e+4]", "\u2028\u2029", "Ā" * 3)


def _random_document(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice(_TRICKY_FLOATS)
    if kind == 1:
        return rng.choice((0, -1, 7, 2**53 + 1, -(2**70), True, False, None))
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind in (3, 4, 5):
        return rng.choice(_TRICKY_STRINGS)
    if kind in (6, 7):
        return {rng.choice(_TRICKY_STRINGS) + str(i): _random_document(rng, depth + 1)
                for i in range(rng.randrange(5))}
    return [_random_document(rng, depth + 1) for _ in range(rng.randrange(5))]


def test_the_fast_encoder_equals_the_exact_one_on_string_keyed_documents() -> None:
    rng = random.Random(20261202)
    for _ in range(3000):
        document = {"k": _random_document(rng)}
        assert canonical_json_of_document(document) == canonical_json(document)


def _without_nulls(value: Any) -> Any:
    if value is None:
        return 0
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def test_the_fast_encoder_equals_the_exact_one_without_nulls() -> None:
    """Any null sends a document the exact way (orjson writes NaN as null), so the documents
    above rarely test the fast path itself."""
    rng = random.Random(20261207)
    for _ in range(3000):
        document = {"k": _without_nulls(_random_document(rng))}
        assert canonical_json_of_document(document) == canonical_json(document)


def test_uuid_texts_stay_on_the_fast_path() -> None:
    # "4e-8" inside a UUID looks like a float exponent to a careless pattern.
    document = {"run_id": "3f2c9a4e-8d1b-4c55-9a7e-0c1d2e3f4a5b", "n": [1, 2.5], "m": "1e-3"}
    text = canonical_json_of_document(document)
    assert text == canonical_json(document)
    assert not _needs_exact_encoder(text)


@pytest.mark.parametrize("bad", [{"a": "x\x00y"}, {"a\x00": 1}, {"a": float("nan")},
                                 {"a": float("inf")}, {"a": "\ud800"}, {"a": [float("nan")]},
                                 {"a": {1: "x"}}])
def test_the_fast_encoder_refuses_what_the_exact_one_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(CanonicalFormError):
        canonical_json(bad)
    with pytest.raises(CanonicalFormError):
        canonical_json_of_document(bad)
