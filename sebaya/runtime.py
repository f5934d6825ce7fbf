"""Where the services are, and connections to them.

Every entry point (worker, CLI commands, scripts) resolves its services the same way: the
environment first (``SEBAYA_DATABASE_URL``, ``TEMPORAL_ADDRESS``; that is how Compose and
production run), else the embedded stack recorded in ``<state_dir>/stack.json`` by
``sebaya dev up``, else a clear error saying which of the two to do.

Temporal is configured the way Temporal's own tools are (``temporalio.envconfig``): a TOML
profile file (``TEMPORAL_CONFIG_FILE``, default ``~/.config/temporalio/temporal.toml``;
profile ``TEMPORAL_PROFILE``, default ``default``) overlaid by ``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*`` and ``TEMPORAL_GRPC_META_*``.
So an API key (Temporal Cloud) or mTLS client certificates work without Sebaya-specific
settings; see ``docs/operations.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from sebaya.codec import data_converter
from sebaya.devstack import StackRecord, find_embedded_postgres, pid_alive, read_stack_record
from sebaya.settings import Settings, get_settings

__all__ = [
    "Services",
    "ServicesNotConfigured",
    "TemporalConfigInvalid",
    "connect_pool",
    "connect_temporal",
    "load_temporal_profile",
    "resolve_services",
]


class ServicesNotConfigured(RuntimeError):
    """Neither the environment nor a running embedded stack says where a service is."""


class TemporalConfigInvalid(ServicesNotConfigured):
    """The Temporal profile or ``TEMPORAL_*`` variables are present but unusable."""


@dataclass(frozen=True)
class Services:
    database_url: str
    temporal_address: str
    namespace: str
    task_queue: str
    # From the Temporal profile / TEMPORAL_* variables; the embedded stack needs none of them.
    temporal_api_key: str | None = field(default=None, repr=False)
    temporal_tls: bool | TLSConfig | None = field(default=None, repr=False)
    temporal_rpc_metadata: Mapping[str, str] = field(default_factory=dict, repr=False)


def load_temporal_profile(environ: Mapping[str, str] | None = None) -> ClientConfigProfile:
    """The Temporal client profile from the config file and ``TEMPORAL_*`` variables of
    ``environ`` (default: the process environment), exactly as Temporal's CLI reads them.

    Raises :class:`TemporalConfigInvalid` naming the file, profile or variable at fault.
    """
    env = dict(os.environ if environ is None else environ)
    config_file = env.get("TEMPORAL_CONFIG_FILE")
    # The SDK quietly ignores a named file that does not exist; a typo must not silently
    # connect somewhere else.
    if config_file and not Path(config_file).expanduser().is_file():
        raise TemporalConfigInvalid(f"TEMPORAL_CONFIG_FILE={config_file}: no such file")
    try:
        profile = ClientConfigProfile.load(override_env_vars=env)
        # Reads the TLS files now, so a wrong path fails here with its name, not at connect.
        profile.to_client_connect_config()
    except OSError as exc:
        raise TemporalConfigInvalid(f"Temporal TLS configuration: {exc.filename}: "
                                    f"{exc.strerror}") from None
    except Exception as exc:  # the bridge's ConfigError: a bad TOML file or unknown profile
        where = config_file or "~/.config/temporalio/temporal.toml"
        name = env.get("TEMPORAL_PROFILE", "default")
        raise TemporalConfigInvalid(f"Temporal profile {name!r} in {where}: {exc}") from None
    return profile


def _embedded_database(record: StackRecord | None, settings: Settings) -> str | None:
    pg = record.postgres if record else None
    if pg is None or pg.external or pg.data_dir is None:
        return None
    # Ask the data folder, not the recorded pid: it is the truth after a crash or a reboot.
    server = find_embedded_postgres(settings.state_dir.expanduser().resolve() / "pgdata")
    return server.dsn if server is not None else None


def _embedded_temporal(record: StackRecord | None) -> str | None:
    temporal = record.temporal if record else None
    if temporal is None or temporal.external or not pid_alive(temporal.pid):
        return None
    return temporal.address


def resolve_services(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None, *,
    temporal: bool = True,
) -> Services:
    """Service locations from the environment (and Temporal profile), else from the running
    embedded stack. ``temporal=False``: only Postgres is needed (``temporal_address`` is then
    empty when none is configured).

    Raises :class:`ServicesNotConfigured` naming what is missing and the two ways to fix it.
    """
    settings = settings or get_settings()
    profile = load_temporal_profile(environ)
    configured_address = profile.address or settings.temporal_address
    needs_record = settings.database_url is None or configured_address is None
    record = read_stack_record(settings.state_dir) if needs_record else None

    database_url = settings.database_url or _embedded_database(record, settings)
    temporal_address = configured_address or _embedded_temporal(record)

    missing = []
    if database_url is None:
        missing.append("Postgres (SEBAYA_DATABASE_URL)")
    if temporal_address is None and temporal:
        missing.append("Temporal (TEMPORAL_ADDRESS)")
    if missing:
        state = settings.state_dir / "stack.json"
        if record is None:
            why = f"no embedded stack has been started ({state} does not exist)"
        else:
            why = f"the embedded stack recorded in {state} is not running"
        raise ServicesNotConfigured(
            f"Cannot locate {' and '.join(missing)}: {why}. Run `sebaya dev up` to start the "
            "embedded stack, or set the environment variable(s) to use existing services."
        )
    assert database_url is not None
    connect = profile.to_client_connect_config()
    return Services(
        database_url=database_url,
        temporal_address=temporal_address or "",
        namespace=profile.namespace or settings.temporal_namespace,
        task_queue=settings.task_queue,
        temporal_api_key=connect.get("api_key"),
        temporal_tls=connect.get("tls"),
        temporal_rpc_metadata=dict(connect.get("rpc_metadata", {})),
    )


async def connect_temporal(
    services: Services, *, settings: Settings | None = None, runtime: Runtime | None = None
) -> Client:
    """A client for ``services``' namespace that (de)serialises pydantic models, encrypting
    payloads when ``SEBAYA_PAYLOAD_KEYS`` is set (:mod:`sebaya.codec`). ``runtime`` carries
    the SDK's telemetry (the worker's Prometheus endpoint)."""
    settings = settings or get_settings()
    return await Client.connect(
        services.temporal_address,
        namespace=services.namespace,
        api_key=services.temporal_api_key,
        tls=services.temporal_tls,
        rpc_metadata=dict(services.temporal_rpc_metadata),
        data_converter=data_converter(settings.payload_keys),
        runtime=runtime,
    )


async def connect_pool(
    services: Services, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A connection pool on the event-store database."""
    pool = await asyncpg.create_pool(services.database_url, min_size=min_size, max_size=max_size)
    assert pool is not None  # create_pool only returns None when awaited lazily
    return pool
