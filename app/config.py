"""Settings, read from HOOKYARD_* environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.delivery.backoff import parse_schedule

DEFAULT_SCHEDULE = "5,300,1800,7200,18000,36000,36000"  # seconds between attempts: 8 tries, ~27 h


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKYARD_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = "sqlite://./data/hookyard.db"
    redis_url: str | None = None
    secret_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    allowed_networks: str = ""
    enforce_plans: bool = True
    retry_schedule: str = DEFAULT_SCHEDULE
    retry_jitter: float = 0.2
    request_timeout: float = 10.0
    disable_after_seconds: float = 5 * 24 * 3600
    retention_days: float = 30
    sweep_interval_seconds: float = 30
    stuck_after_seconds: float = 60
    # How long a worker owns a delivery it is sending; after that (the worker died) it is sent again.
    send_lease_seconds: float = 90
    debug: bool = False
    max_query_depth: int = 12
    max_query_tokens: int = 2000
    max_aliases: int = 30
    allowed_origins: str = ""
    # Live updates waiting for one WebSocket subscriber beyond what its socket holds; past that it is dropped.
    subscriber_buffer: int = 256
    # How long a dropped subscriber gets to receive its close frame before its connection is cut.
    slow_subscriber_grace_seconds: float = 5.0
    # How often live subscriptions have their token and role checked again (revocation, expiry, demotion).
    live_access_check_seconds: float = 30.0
    # permessage-deflate on WebSockets: each connection then keeps its own zlib state (~300 KiB) and
    # every live update is compressed once per client; off by default (see README, live updates).
    ws_compression: bool = False
    worker_concurrency: int = 200
    run_worker_in_api: bool = True
    log_level: str = "info"
    oauth_state_ttl_seconds: int = 600
    hubspot_client_id: str | None = None
    hubspot_client_secret: str | None = None
    hubspot_auth_url: str = "https://app.hubspot.com/oauth/authorize"
    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_token_url: str | None = None  # default: hubspot_api_url + "/oauth/v1/token"
    pipedrive_client_id: str | None = None
    pipedrive_client_secret: str | None = None
    pipedrive_auth_url: str = "https://oauth.pipedrive.com/oauth/authorize"
    pipedrive_token_url: str = "https://oauth.pipedrive.com/oauth/token"
    pipedrive_api_url: str = "https://api.pipedrive.com"
    google_client_id: str | None = None
    google_client_secret: str | None = None
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_sheets_api_url: str = "https://sheets.googleapis.com"

    tortoise_modules: list[str] = Field(default_factory=lambda: ["app.models"])

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        for part in value.split(","):
            part = part.strip()
            if part:
                try:
                    ipaddress.ip_network(part, strict=False)
                except ValueError as exc:
                    raise ValueError(f"HOOKYARD_ALLOWED_NETWORKS: {part!r} is not a CIDR network") from exc
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_parse(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @property
    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(p.strip(), strict=False) for p in self.allowed_networks.split(",") if p.strip()
        ]

    @property
    def schedule(self) -> tuple[float, ...]:
        return parse_schedule(self.retry_schedule)

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


_override: Settings | None = None


@lru_cache(maxsize=1)
def _from_env() -> Settings:
    return Settings()


def get_settings() -> Settings:
    return _override or _from_env()


def set_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (tests and the CLI use this)."""
    global _override
    _override = settings
    _from_env.cache_clear()
