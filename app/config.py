"""Settings, read from HOOKYARD_* environment variables."""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Seconds between attempts after the 1st..7th failure: 8 attempts, about 27 hours in all.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
LOG_FORMATS = ("json", "console")


def _items(value: Any) -> list[Any]:
    """A comma-separated string (as environment variables hold lists) or a sequence, as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def parse_networks(value: Any) -> tuple[IPNetwork, ...]:
    networks = []
    for part in _items(value):
        try:
            networks.append(part if isinstance(part, IPNetwork) else ipaddress.ip_network(str(part), strict=False))
        except ValueError as exc:
            raise ValueError(f"{part!r} is not a CIDR network such as 10.0.0.0/8") from exc
    return tuple(networks)


def parse_schedule(value: Any) -> tuple[float, ...]:
    """Comma-separated non-negative seconds such as ``"1,5,30"``; blank gives the default."""
    if isinstance(value, str):  # an empty entry ("1,,2") is a mistake, not something to skip
        entries: list[Any] = [part.strip() for part in value.split(",")] if value.strip() else []
    else:
        entries = _items(value)
    if not entries:
        return DEFAULT_RETRY_SCHEDULE
    delays = []
    for position, entry in enumerate(entries, start=1):
        try:
            delay = float(entry)
        except (TypeError, ValueError):
            raise ValueError(f"retry schedule entry {position} ({entry!r}) is not a number of seconds") from None
        if not math.isfinite(delay) or delay < 0:
            raise ValueError(f"retry schedule entry {position} ({entry!r}) must be a finite, "
                             "non-negative number of seconds")
        delays.append(delay)
    return tuple(delays)


def parse_egress_proxy(value: Any) -> str | None:
    """An http:// or https:// proxy URL with a host (and maybe user:password); blank gives None.
    Errors show it without its user part."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    try:
        parts = urlsplit(text)
    except ValueError:  # such as an unclosed [IPv6 literal
        raise ValueError("egress proxy is not a URL such as http://proxy.internal:3128") from None
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.scheme else "the value given"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in 0..65535
    except ValueError:
        raise ValueError(f"egress proxy {shown} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"egress proxy {shown} must be an http:// or https:// URL with a host, "
                         "such as http://proxy.internal:3128")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"egress proxy {shown} may not have a path or query: give scheme://host:port only")
    return text


class Settings(BaseSettings):
    # Errors name the setting and quote only what the validators choose to: a bad value may hold a
    # password (HOOKYARD_EGRESS_PROXY, HOOKYARD_DATABASE_URL), and pydantic would echo it in full.
    model_config = SettingsConfigDict(env_prefix="HOOKYARD_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Path("./data")
    # Unset (or blank): the SQLite file hookyard.db in data_dir (see _default_database_url).
    database_url: str = ""
    # PostgreSQL's planner cost of a random page read for Hookyard's own connections. The server default (4)
    # assumes disks: with it, a batch's load by primary key is planned as a scan of the whole event table
    # until that table is large, and each delivery costs more as the log grows. 1.1 is the usual figure
    # for SSDs and a working set in memory; blank keeps the server's setting.
    database_random_page_cost: float | None = Field(default=1.1, gt=0)
    redis_url: str | None = None
    secret_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    # Lists are written comma-separated in the environment and parsed once, here.
    allowed_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    # An HTTP proxy every outgoing request goes through (http://[user:password@]host:port); the SSRF
    # guard still checks each target, the proxy's own address is exempt from it (see README, egress proxy).
    egress_proxy: str | None = None
    enforce_plans: bool = True
    # The plan of a workspace created by anyone but an instance operator (who may choose one).
    default_plan: Literal["free", "starter", "professional"] = "free"
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
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
    # The largest request body (and WebSocket message) taken, in bytes; a larger one is answered 413.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Rate limits, counted per minute in Redis so they hold across API replicas; over one, 429.
    rate_limit_enabled: bool = True
    # GraphQL requests per token (per client IP for requests without one).
    rate_limit_per_minute: int = Field(default=600, ge=1)
    # `eventPublish` requests per token (per client IP without one): a budget of their own.
    publish_rate_limit_per_minute: int = Field(default=6000, ge=1)
    # Requests with a bad, unknown, revoked or expired token per client IP; past it, tokens from it are refused.
    auth_failures_per_minute: int = Field(default=30, ge=1)
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Origins whose pages may frame /portal (Content-Security-Policy frame-ancestors), besides this one.
    portal_frame_ancestors: Annotated[tuple[str, ...], NoDecode] = ()
    # Live updates waiting for one WebSocket subscriber beyond what its socket holds; past that it is dropped.
    subscriber_buffer: int = 256
    # How long a dropped subscriber gets to receive its close frame before its connection is cut.
    slow_subscriber_grace_seconds: float = 5.0
    # How often live subscriptions have their token and role checked again (revocation, expiry, demotion).
    live_access_check_seconds: float = 30.0
    # How long an API process remembers a token's (or portal session's) principal and a user's role in a
    # workspace. Revocation and member changes made in the same process apply at once, those made in another
    # process (replica, CLI) within this many seconds; expiry is checked on every request. 0: no caching.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # permessage-deflate on WebSockets: each connection then keeps its own zlib state (~300 KiB) and
    # every live update is compressed once per client; off by default (see README, live updates).
    ws_compression: bool = False
    worker_concurrency: int = 200
    # On SIGTERM a worker (and the API) stops taking work and gives what is in flight this long to finish
    # and be recorded; a send still out after that is left to its lease and sent again by another worker.
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    run_worker_in_api: bool = True
    # Prometheus metrics. Set, `hookyard worker` serves /metrics on this port; `hookyard serve` serves its
    # metrics there too, instead of at /metrics on its main port. Unset: workers serve none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str | None = None  # default: HOOKYARD_HOST
    # Set, /metrics (API and worker) answers only `Authorization: Bearer <token>`; 401 otherwise.
    metrics_token: str | None = None
    log_level: str = "info"
    # json | console; unset: console when stderr is a terminal, JSON lines otherwise.
    log_format: str | None = None
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
    google_drive_api_url: str = "https://www.googleapis.com"  # Drive v3: listing spreadsheets

    tortoise_modules: list[str] = Field(default_factory=lambda: ["app.models"])

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[IPNetwork, ...]:
        return parse_networks(value)

    @field_validator("egress_proxy", mode="before")
    @classmethod
    def _egress_proxy(cls, value: Any) -> str | None:
        return parse_egress_proxy(value)

    @field_validator("database_random_page_cost", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> tuple[float, ...]:
        return parse_schedule(value)

    @field_validator("allowed_origins", "portal_frame_ancestors", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> tuple[str, ...]:
        return tuple(str(origin) for origin in _items(value))

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip().lower()
        if text not in LOG_FORMATS:
            raise ValueError(f"log format {value!r} is not one of: {', '.join(LOG_FORMATS)}")
        return text

    @model_validator(mode="after")
    def _default_database_url(self) -> Settings:
        if not self.database_url.strip():
            self.database_url = f"sqlite://{self.data_dir / 'hookyard.db'}"
        return self

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
