"""Web service configuration, from the environment like the rest of Sebaya."""

from __future__ import annotations

import secrets

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # Signs sign-in links. Unset: a random key per process (links die with a restart, which
    # is fine for development; production sets it so several replicas agree).
    secret_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32),
                            validation_alias="SEBAYA_WEB_SECRET")
    # The address people open, used in sign-in links and mails (behind a proxy: the public
    # https URL). The same variable the notification templates use for their links.
    public_url: str = Field(default="http://127.0.0.1:8000", validation_alias="SEBAYA_WEB_URL")
    host: str = Field(default="127.0.0.1", validation_alias="SEBAYA_WEB_HOST")
    port: int = Field(default=8000, validation_alias="SEBAYA_WEB_PORT")
    # Language of pages when neither the program nor the browser says otherwise.
    default_language: str = Field(default="id", validation_alias="SEBAYA_WEB_LANGUAGE")
    task_queue: str = Field(default="sebaya", validation_alias="SEBAYA_TASK_QUEUE")
    # How long a request may wait on Temporal before answering 503.
    temporal_timeout_s: float = Field(default=10.0, validation_alias="SEBAYA_WEB_TEMPORAL_TIMEOUT")
    magic_link_minutes: int = 15
    # `sebaya serve` keeps the read models current by following the event log itself (off
    # when a separate `sebaya projections follow` process does it).
    follow_projections: bool = Field(default=True, validation_alias="SEBAYA_WEB_PROJECTOR")
    pool_size: int = Field(default=20, validation_alias="SEBAYA_WEB_POOL_SIZE")
    # Proxies whose X-Forwarded-For/-Proto headers are believed (uvicorn's setting).
    forwarded_allow_ips: str = Field(default="127.0.0.1",
                                     validation_alias="SEBAYA_WEB_FORWARDED_ALLOW_IPS")
    session_days: int = Field(default=14, validation_alias="SEBAYA_WEB_SESSION_DAYS")
    # The program mailbox, ORGANIZER of the calendar feed's meetings (as in the invites).
    mail_from: str = Field(default="Sebaya <sebaya@localhost>", validation_alias="SEBAYA_SMTP_FROM")
    # Origins (the Temporal Web UI's) whose browsers may call the codec endpoint, comma
    # separated; never "*": the endpoint answers with plaintext and credentials.
    codec_cors_origins_list: str = Field(default="", validation_alias="SEBAYA_CODEC_CORS_ORIGINS")

    @field_validator("codec_cors_origins_list")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in filter(None, (o.strip() for o in value.split(","))):
            if origin == "*" or not origin.startswith(("https://", "http://")) \
                    or origin.rstrip("/") != origin or origin.count("/") != 2:
                raise ValueError(f"SEBAYA_CODEC_CORS_ORIGINS: {origin!r} is not an origin "
                                 "like https://temporal-ui.example.com ('*' is refused)")
        return value

    @property
    def codec_cors_origins(self) -> frozenset[str]:
        return frozenset(filter(None, (o.strip() for o in self.codec_cors_origins_list.split(","))))

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, value: str) -> str:
        # Empty (Compose passes an unset variable as ""): a per-process random key.
        if not value:
            return secrets.token_urlsafe(32)
        if len(value) < 16:
            raise ValueError("SEBAYA_WEB_SECRET must be at least 16 characters")
        return value

    @property
    def secret_configured(self) -> bool:
        import os

        return bool(os.environ.get("SEBAYA_WEB_SECRET"))

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")
