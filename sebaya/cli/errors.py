"""How every CLI command stops on an error it can explain: one line on stderr, an exit code
(2: the request failed; 1: a finding, as ``sebaya audit`` uses it). Light on purpose: each
command module imports it at module level."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> typer.Exit:
    """``raise fail("...")``: print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)
