"""Run ``sebaya`` commands in-process from async tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner, Result

from sebaya.cli import app


async def sebaya(*args: str) -> Result:
    """``sebaya ARGS``; in a worker thread, since the CLI runs its own event loop."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), catch_exceptions=False)


def output_json(result: Result) -> Any:
    return json.loads(result.stdout)
