"""Web service configuration, from the environment like the rest of Sebaya."""

from __future__ import annotations

import secrets

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # Signs sign-in links. Unset: a random key per process (links die with a restart, which
    # is fine for development; production sets it so several replicas agree).
    secret_key: str = Field(default_factory=lambda: secrets.token_urlsafe(32),
                            validation_alias="SEBAYA_WEB_SECRET")
    # The address people open, used in sign-in links (behind a proxy: the public https URL).
    public_url: str = Field(default="http://127.0.0.1:8000", validation_alias="SEBAYA_PUBLIC_URL")
    host: str = Field(default="127.0.0.1", validation_alias="SEBAYA_WEB_HOST")
    port: int = Field(default=8000, validation_alias="SEBAYA_WEB_PORT")
    # Language of pages when neither the program nor the browser says otherwise.
    default_language: str = Field(default="id", validation_alias="SEBAYA_WEB_LANGUAGE")
    task_queue: str = Field(default="sebaya", validation_alias="SEBAYA_TASK_QUEUE")
    # How long a request may wait on Temporal before answering 503.
    temporal_timeout_s: float = Field(default=10.0, validation_alias="SEBAYA_WEB_TEMPORAL_TIMEOUT")
    magic_link_minutes: int = 15
    session_days: int = Field(default=14, validation_alias="SEBAYA_WEB_SESSION_DAYS")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")
