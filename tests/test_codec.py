"""The payload codec on the real dev server: with keys set, Temporal histories hold no
plaintext goal text; after a key rotation old payloads still decode; a missing or wrong key
fails with a message saying which key; the codec endpoint decodes for the Web UI."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.converter import DataConverter

from domain import commands as c
from domain import events as e
from sebaya.codec import PayloadDecryptionError, PayloadKeyError, PayloadKeys, data_converter
from sebaya.codec_server import handle as codec_endpoint
from tests.workflows.harness import (
    MENTEE_ACTOR,
    advance_by,
    running_worker,
    start_pairing,
    started_state,
)
from workflows.pairing import PairingWorkflow

K1 = base64.b64encode(os.urandom(32)).decode()
K2 = base64.b64encode(os.urandom(32)).decode()
UI = "https://temporal-ui.example"


def client_with(env: Any, keys: str | None) -> Client:
    base: Client = env.client
    return Client(base.service_client, namespace=base.namespace,
                  data_converter=data_converter(keys))


def secret_goals(marker: str, goal_id: str = "g-1") -> tuple[e.Goal, ...]:
    return (e.Goal(goal_id=goal_id, title=f"Belajar negosiasi gaji {marker}",
                   success_measure=f"rahasia {marker}"),)


async def raw_history(client: Client, workflow_id: str) -> bytes:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


async def start_input(client: Client, workflow_id: str) -> Payloads:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return history.events[0].workflow_execution_started_event_attributes.input


async def set_goals(env: Any, client: Client, pool: asyncpg.Pool, task_queue: str,
                    marker: str) -> str:
    async with running_worker(client, pool, task_queue):
        handle = await start_pairing(client, task_queue)
        await started_state(handle)
        await advance_by(env, handle, timedelta(hours=1))
        await handle.execute_update(PairingWorkflow.set_goals,
                                    c.SetGoals(actor=MENTEE_ACTOR, goals=secret_goals(marker)))
    return handle.id


pytestmark = pytest.mark.temporal


async def test_histories_hold_no_plaintext_and_rotation_keeps_old_payloads_readable(
    temporal_env: Any, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    env = temporal_env
    # The control: without keys the goal text is in the history, so the scan below can fail.
    plain_marker = uuid.uuid4().hex
    plain_id = await set_goals(env, client_with(env, None), db_pool, task_queue, plain_marker)
    assert plain_marker.encode() in await raw_history(env.client, plain_id)

    marker = uuid.uuid4().hex
    first = client_with(env, f"k1:{K1}")
    workflow_id = await set_goals(env, first, db_pool, task_queue, marker)
    raw = await raw_history(env.client, workflow_id)
    assert marker.encode() not in raw
    assert b"Belajar negosiasi" not in raw and b"M001" not in raw
    assert b"binary/encrypted" in raw

    # Rotation: k2 becomes active, k1 stays to read what it wrote. A fresh worker replays
    # the k1 history, then writes new payloads under k2.
    rotated = client_with(env, f"k2:{K2},k1:{K1}")
    async with running_worker(rotated, db_pool, task_queue):
        handle = rotated.get_workflow_handle_for(PairingWorkflow.run, workflow_id)
        state = await handle.query(PairingWorkflow.state)
        assert [g.title for g in state.goals[e.Side.MENTEE]] == [
            f"Belajar negosiasi gaji {marker}"]
        await handle.execute_update(PairingWorkflow.set_goals, c.SetGoals(
            actor=c.Actor.employee("M001"), goals=secret_goals(marker + "-2", "g-2")))
        await handle.terminate("test over")
    history = await handle.fetch_history()
    payloads = [(event, p) for event in history.events for p in _payloads_of(event)]
    assert {p.metadata.get("encryption-key-id") for _, p in payloads if _encrypted(p)} == {
        b"k1", b"k2"}
    # The only plaintext: the SDK core's own markers, which never pass through a codec: its
    # bookkeeping of local activities (sequence number, attempt, activity type, times) and
    # the ids of `workflow.patched()` markers. Neither carries anything a participant wrote.
    for event, payload in payloads:
        if not _encrypted(payload):
            assert event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            fields = set(json.loads(payload.data))
            assert fields >= {"seq", "attempt", "activity_type"} or fields == {
                "id", "deprecated"}, fields
    assert marker.encode() not in await raw_history(env.client, workflow_id)

    # A client without k1 cannot read the start input, and says which key is missing.
    encrypted = await start_input(env.client, workflow_id)
    with pytest.raises(PayloadDecryptionError, match=r"key 'k1', which is not in "
                                                     r"SEBAYA_PAYLOAD_KEYS \(configured: k2\)"):
        await data_converter(f"k2:{K2}").decode(list(encrypted.payloads))
    wrong = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(PayloadDecryptionError, match="key is wrong or the payload was altered"):
        await data_converter(f"k1:{wrong}").decode(list(encrypted.payloads))

    # The codec endpoint the Web UI calls: decodes, with CORS for the configured UI only.
    codec = rotated.data_converter.payload_codec
    assert codec is not None
    body = json_format.MessageToJson(encrypted).encode()
    status, headers, answer = await handle_request("POST", "/decode", body, codec)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == UI
    decoded = json.loads(answer)["payloads"][0]
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
    assert b"M001" in base64.b64decode(decoded["data"])
    status, headers, _ = await codec_endpoint("OPTIONS", "/decode", {"Origin": "https://evil.example"},
                                      b"", codec=codec, allowed_origins={UI})
    assert status == 400 and "Access-Control-Allow-Origin" not in headers
    assert (await handle_request("POST", "/decode", b"{not json", codec))[0] == 400
    strange = data_converter(f"k1:{wrong}").payload_codec
    assert strange is not None
    status, _, answer = await handle_request("POST", "/decode", body, strange)
    assert status == 422 and b"key is wrong" in answer


async def handle_request(method: str, path: str, body: bytes,
                         codec: Any) -> tuple[int, dict[str, str], bytes]:
    headers = {"Origin": UI, "Content-Type": "application/json"}
    return await codec_endpoint(method, path, headers, body, codec=codec, allowed_origins={UI})


def _encrypted(payload: Any) -> bool:
    return payload.metadata.get("encoding") == b"binary/encrypted"


def _payloads_of(event: Any) -> list[Any]:
    """Every Payload inside one history event (inputs, results, update arguments...)."""
    found: list[Any] = []

    def walk(message: Any) -> None:
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:
                items = list(value.values())
            elif hasattr(value, "ListFields"):
                items = [value]
            else:  # a repeated field
                items = list(value)
            for item in items:
                if field.message_type.full_name == "temporal.api.common.v1.Payload":
                    found.append(item)
                elif hasattr(item, "ListFields"):
                    walk(item)

    walk(event)
    return found


def test_keys_are_parsed_strictly() -> None:
    keys = PayloadKeys.parse(f" k2:{K2} , k1:{K1} ")
    assert keys.active == "k2" and list(keys.keys) == ["k2", "k1"]
    assert K1 not in repr(keys)
    for text, message in [
        ("k1", "entry 1 (k1): expected <key id>:<base64 key>"),
        (f"k1:{K1},k1:{K2}", "entry 2 (k1): key id 'k1' appears twice"),
        ("k1:not base64!", "entry 1 (k1): the key is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "the key is 5 bytes"),
        (" , ", "names no key"),
    ]:
        with pytest.raises(PayloadKeyError, match=message.replace("(", r"\(").replace(")", r"\)")):
            PayloadKeys.parse(text)
    assert isinstance(data_converter(None), DataConverter)
    assert data_converter(None).payload_codec is None
