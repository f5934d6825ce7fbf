"""The codec endpoint as the web service mounts it (``/api/v1/codec``): the Temporal CLI, pointed at
it with a coordinator's token, shows a workflow's encrypted input as plaintext; only
coordinators may decode; the browser preflight is answered for the configured UI origin
only; without payload keys the endpoint does not exist."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from delivery.channels import LogChannel
from sebaya.bootstrap import build_registry
from sebaya.codec import data_converter
from sebaya.settings import temporal_cli_path
from tests.web.conftest import BASE_URL, free_port, serving, web_settings
from web import auth
from web.app import create_app

pytestmark = pytest.mark.temporal

KEYS = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
UI = "http://127.0.0.1:8233"
SECRET = "Belajar negosiasi gaji rahasia-7431"


def app_with(temporal_env: Any, pool: asyncpg.Pool, keys: str | None) -> tuple[Any, Client]:
    base: Client = temporal_env.client
    client = Client(base.service_client, namespace=base.namespace,
                    data_converter=data_converter(keys))
    settings = web_settings("tq-codec", codec_cors_origins_list=UI)
    return create_app(pool=pool, client=client, registry=build_registry(), settings=settings,
                      channel=LogChannel()), client


async def bearer(pool: asyncpg.Pool, role: auth.StaffRole) -> dict[str, str]:
    _, token = await auth.create_api_token(pool, role, f"codec-{uuid.uuid4().hex[:6]}")
    return {"Authorization": f"Bearer {token}"}


async def test_the_temporal_cli_reads_encrypted_input_through_the_endpoint(
        temporal_env: Any, db_pool: asyncpg.Pool) -> None:
    app, client = app_with(temporal_env, db_pool, KEYS)
    # A workflow nobody runs is enough: its first history event holds the encrypted input.
    workflow_id = f"codec-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow("NobodyRunsThis", {"goal": SECRET}, id=workflow_id,
                                         task_queue=f"tq-nobody-{uuid.uuid4().hex[:6]}")
    headers = await bearer(db_pool, "coordinator")

    async def show(*extra: str) -> str:
        process = await asyncio.create_subprocess_exec(
            str(temporal_cli_path()), "workflow", "show", "--workflow-id", workflow_id,
            "--address", temporal_env.client.service_client.config.target_host,
            "--namespace", client.namespace, "--output", "json", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    try:
        # What the Web UI and CLI show without the endpoint: ciphertext.
        encoding, data = started_input(await show())
        assert encoding == "binary/encrypted" and SECRET not in data
        async with serving(app, free_port()) as url:
            encoding, data = started_input(await show(
                "--codec-endpoint", f"{url}/api/v1/codec",
                "--codec-auth", headers["Authorization"]))
            assert encoding == "json/plain" and SECRET in data
            async with httpx.AsyncClient(base_url=url) as http:
                # Anyone else: refused, and the refusal reveals nothing.
                for who in (None, "auditor"):
                    sent = {} if who is None else await bearer(db_pool, who)
                    r = await http.post("/api/v1/codec/decode", headers=sent,
                                        content=await encrypted_document(client))
                    assert r.status_code == (401 if who is None else 403), r.text
                    assert SECRET not in r.text
    finally:
        await handle.terminate("test over")


def started_input(shown: str) -> tuple[str, str]:
    """The encoding and data of the workflow's input in ``temporal workflow show -o json``."""
    first = json.loads(shown)["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = first["input"]["payloads"][0]
    return (base64.b64decode(payload["metadata"]["encoding"]).decode(),
            base64.b64decode(payload["data"]).decode(errors="replace"))


async def encrypted_document(client: Client) -> bytes:
    payloads = await client.data_converter.encode([{"goal": SECRET}])
    return json_format.MessageToJson(Payloads(payloads=payloads)).encode()


async def test_only_coordinators_decode_and_only_the_ui_origin_gets_cors(
        temporal_env: Any, db_pool: asyncpg.Pool) -> None:
    app, client = app_with(temporal_env, db_pool, KEYS)
    document = await encrypted_document(client)
    session_id = await auth.create_session(db_pool, "participant", "E100", days=1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        coordinator = {**await bearer(db_pool, "coordinator"), "Origin": UI}
        r = await http.post("/api/v1/codec/decode", content=document, headers=coordinator)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == UI
        data = json.loads(r.text)["payloads"][0]["data"]
        assert SECRET in base64.b64decode(data).decode()
        # A participant (even with a valid session and CSRF token) may not decode.
        csrf = auth.csrf_token(app.state.services.settings.secret_key, session_id)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                                     cookies={"sebaya_session": session_id},
                                     headers={"X-CSRF-Token": csrf}) as participant:
            r = await participant.post("/api/v1/codec/decode", content=document)
        assert r.status_code == 403 and SECRET not in r.text
        # Preflights carry no credentials: answered for the UI's origin only.
        ask = {"Origin": UI, "Access-Control-Request-Method": "POST"}
        r = await http.options("/api/v1/codec/decode", headers=ask)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == UI
        assert "Authorization" in r.headers["access-control-allow-headers"]
        r = await http.options("/api/v1/codec/decode", headers={**ask, "Origin": "https://evil.example"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        assert (await http.post("/api/v1/codec/frobnicate", content=document,
                                headers=coordinator)).status_code == 422
        r = await http.post("/api/v1/codec/decode", content=b"{not json", headers=coordinator)
        assert r.status_code == 400


async def test_without_payload_keys_there_is_nothing_to_decode(
        temporal_env: Any, db_pool: asyncpg.Pool) -> None:
    app, _ = app_with(temporal_env, db_pool, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        r = await http.post("/api/v1/codec/decode", content=b'{"payloads": []}',
                            headers=await bearer(db_pool, "coordinator"))
        assert r.status_code == 404 and r.json()["code"] == "codec_not_configured", r.text
