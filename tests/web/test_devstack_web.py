"""`sebaya dev up` runs the web service beside the worker: its URL is in the status, it is
ready (Postgres, Temporal and the worker answer), it keeps its signing key across restarts
and `down` stops it first."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from pathlib import Path

from sebaya.devstack import DevStack
from sebaya.settings import Settings
from tests.test_devstack import StackFactory, _ports


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_dev_up_serves_the_web_app(make_stack: StackFactory, state_dir: Path) -> None:
    pg_port, temporal_port, ui_port = _ports()
    stack: DevStack = make_stack(task_queue=f"tq-{uuid.uuid4().hex[:8]}")
    status = await asyncio.to_thread(
        stack.up, temporal_port=temporal_port, ui_port=ui_port, pg_port=pg_port)
    web = status.service("web")
    assert web.alive and web.address and web.address.startswith("http://127.0.0.1:")
    assert (state_dir / "web-secret").stat().st_mode & 0o777 == 0o600
    secret = (state_dir / "web-secret").read_text()
    for _ in range(100):
        code, body = await asyncio.to_thread(_get, f"{web.address}/readyz")
        if code == 200:
            break
        await asyncio.sleep(0.2)  # real time: the worker starts polling
    assert code == 200, body
    again = await asyncio.to_thread(stack.up)
    assert again.service("web").pid == web.pid  # left running
    assert (state_dir / "web-secret").read_text() == secret
    assert Settings(state_dir=state_dir).state_dir == state_dir
    results = await asyncio.to_thread(stack.down)
    assert (results[0].name, results[0].outcome) == ("web", "stopped")
    assert stack.status().service("web").state == "stopped"
