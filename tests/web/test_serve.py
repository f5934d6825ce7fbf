"""``sebaya serve`` and ``sebaya tokens`` as real processes against the test services:
health, readiness (Postgres, Temporal, a worker), an API call with a token shown once,
revocation, and a clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.workflows.harness import running_worker, start_pairing, started_state
from web import auth as web_auth

pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parents[2]
SEBAYA = str(Path(sys.executable).with_name("sebaya"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(db_dsn: str, temporal_env: Any, task_queue: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ,
            "SEBAYA_DATABASE_URL": db_dsn,
            "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "SEBAYA_TASK_QUEUE": task_queue,
            "SEBAYA_STATE_DIR": str(tmp_path / "state"),
            "SEBAYA_WEB_SECRET": "test-secret-for-this-run",
            "SEBAYA_LOG_FORMAT": "json"}


def sebaya(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SEBAYA, *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
async def test_serve_and_tokens(temporal_env: Any, db_pool: Any, db_dsn: str,
                                task_queue: str, tmp_path: Path) -> None:
    env = env_for(db_dsn, temporal_env, task_queue, tmp_path)
    created = sebaya(env, "tokens", "create", "--role", "auditor", "--name", "ci auditor")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("sby_") and "shown only now" in created.stderr
    token_id = created.stdout.split()[2]
    stored = await db_pool.fetchval("SELECT count(*) FROM api_tokens WHERE token_hash = $1",
                                    token)
    assert stored == 0, "the token itself must never be stored"
    bad = sebaya(env, "tokens", "create", "--role", "participant", "--name", "x")
    assert bad.returncode != 0

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        SEBAYA, "serve", "--port", str(port), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.returncode is None, "sebaya serve exited early"
                await asyncio.sleep(0.1)  # real time: the process is starting
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"]["worker"].startswith("unavailable")
            async with running_worker(temporal_env.client, db_pool, task_queue):
                for _ in range(100):
                    ready = await http.get("/readyz")
                    if ready.status_code == 200:
                        break
                    await asyncio.sleep(0.1)  # real time: the worker's first poll
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {"postgres": "ok", "temporal": "ok",
                                                  "worker": "ok"}
                # The served process follows the log: a new pairing shows up in the mentee's
                # list with nobody running the projector by hand.
                handle = await start_pairing(temporal_env.client, task_queue,
                                             mentor="M700", mentee="E700")
                pairing_id = (await started_state(handle)).pairing_id
                session = await web_auth.create_session(db_pool, "participant", "E700", days=1)
                listed: list[Any] = []
                for _ in range(150):
                    mine = await http.get("/api/v1/me/pairings",
                                          headers={"Cookie": f"sebaya_session={session}"})
                    listed = [p["pairing_id"] for p in mine.json()]
                    if listed:
                        break
                    await asyncio.sleep(0.2)  # real time: the projector polls every second
                assert listed == [pairing_id]
            auth = {"Authorization": f"Bearer {token}"}
            r = await http.get("/api/v1/audit/verify", headers=auth)
            assert r.status_code == 200 and r.json()["ok"] is True
            assert r.headers["x-request-id"]
            spec = await http.get("/api/v1/openapi.json")
            assert spec.status_code == 200 and "/api/v1/pairings/{pairing_id}" in \
                spec.json()["paths"]
            listed = sebaya(env, "tokens", "list")
            assert token_id in listed.stdout and "active" in listed.stdout
            assert sebaya(env, "tokens", "revoke", token_id).returncode == 0
            assert (await http.get("/api/v1/audit/verify", headers=auth)).status_code == 401
            assert "revoked" in sebaya(env, "tokens", "list").stdout
            assert sebaya(env, "tokens", "revoke", "nope").returncode == 1
    finally:
        proc.send_signal(signal.SIGINT)
        raw, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    output = raw.decode()
    assert proc.returncode == 0, output
    assert '"request_id"' in output and '"path": "/api/v1/audit/verify"' in output
