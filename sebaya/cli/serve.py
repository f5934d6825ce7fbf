"""``sebaya serve``: the web service (API and pages) on uvicorn.

Infrastructure comes from the composition root (``sebaya.bootstrap``) like every entry
point's: services from the environment, else the embedded stack. One asyncpg pool and one
Temporal client are opened at start-up, shared by every request, and closed at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from web.deps import Services
    from web.settings import WebSettings

app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@asynccontextmanager
async def served_services(web_settings: WebSettings) -> AsyncIterator[Services]:
    """Everything the web app needs, from the configured services; closed on exit."""
    from sebaya.bootstrap import open_infrastructure
    from web.app import build_services

    following: asyncio.Task[None] | None = None
    stop = asyncio.Event()
    async with open_infrastructure(pool_min_size=2,
                                   pool_max_size=web_settings.pool_size) as infra:
        built = build_services(
            pool=infra.pool, client=infra.temporal, registry=infra.registry,
            settings=web_settings.model_copy(
                update={"task_queue": infra.services.task_queue}),
            notifier=infra.notifier)
        try:
            if web_settings.follow_projections:
                # Lists (my pairings, cohort status) come from the read models: keep them
                # within a second of the log. Several processes may follow; the checkpoint
                # arbitrates.
                from projections import Projector

                following = asyncio.create_task(
                    Projector(built.store).run(poll_interval=1.0, stop_event=stop),
                    name="projector")
            yield built
        finally:
            stop.set()
            if following is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(following, timeout=10)


@app.callback()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on "
                                             "(default SEBAYA_WEB_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SEBAYA_WEB_PORT or 8000).")
                    ] = None,
) -> None:
    """Run the web service: participant pages, coordinator pages and the /api/v1 API."""
    import uvicorn

    from sebaya.logging import configure_logging
    from sebaya.runtime import ServicesNotConfigured, resolve_services
    from sebaya.settings import get_settings
    from web.app import create_app
    from web.settings import WebSettings

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        resolve_services(settings)  # fail now, saying how to fix it, not at the first request
    except ServicesNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    web_settings = WebSettings()
    if not web_settings.secret_configured:
        typer.echo("note: SEBAYA_WEB_SECRET is not set; sign-in links and sessions' CSRF tokens "
                   "use a per-process key (fine for development, not for several replicas).",
                   err=True)
    web_app = create_app(services_factory=lambda: served_services(web_settings))
    uvicorn.run(web_app, host=host or web_settings.host, port=port or web_settings.port,
                log_config=None, access_log=False, proxy_headers=True,
                forwarded_allow_ips=web_settings.forwarded_allow_ips)
