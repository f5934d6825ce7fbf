"""``sebaya tokens``: API tokens for coordinators and auditors. A token is shown once; only
its SHA-256 is stored."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import typer

app = typer.Typer(no_args_is_help=True)


def _run(work: Any) -> Any:
    from sebaya.runtime import ServicesNotConfigured, connect_pool, resolve_services

    async def go() -> Any:
        pool = await connect_pool(resolve_services())
        try:
            return await work(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(go())
    except ServicesNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


@app.command("create")
def create(
    role: Annotated[Literal["coordinator", "auditor"], typer.Option(help="What the token may do.")],
    name: Annotated[str, typer.Option(help="Who or what uses it (shown in `tokens list`).")],
) -> None:
    """Create a token and print it once (store it in a password manager)."""
    from web import auth

    try:
        token_id, token = _run(lambda pool: auth.create_api_token(pool, role, name))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"token id: {token_id}  role: {role}  name: {name}")
    typer.echo("The token is shown only now:", err=True)
    typer.echo(token)


@app.command("list")
def list_tokens() -> None:
    """Every token: id, role, name, when created and last used, revoked or not."""
    from web import auth

    tokens = _run(auth.list_api_tokens)
    if not tokens:
        typer.echo("no tokens")
        return
    for t in tokens:
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        state = f"revoked {t.revoked_at.isoformat(timespec='seconds')}" if t.revoked_at \
            else "active"
        typer.echo(f"{t.token_id}  {t.role:<11}  {t.name}  created "
                   f"{t.created_at.isoformat(timespec='seconds')}  last used {used}  {state}")


@app.command("revoke")
def revoke(token_id: Annotated[str, typer.Argument(help="The token id from `tokens list`.")]
           ) -> None:
    """Revoke a token (and the browser sessions opened with it) at once."""
    from web import auth

    if not _run(lambda pool: auth.revoke_api_token(pool, token_id)):
        typer.echo(f"error: no token with id {token_id!r}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"revoked {token_id}")
