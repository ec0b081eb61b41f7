"""The signed, expiring, single-use `state` of the OAuth connect flow."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson

MAX_STATE_LENGTH = 4096


class OAuthStateError(ValueError):
    """A `state` value is malformed, forged or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(body: str, key: bytes) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def make_state(payload: dict[str, Any], key: bytes, ttl: int, *, now: float | None = None) -> str:
    """A signed, expiring state: base64url(JSON) "." base64url(HMAC-SHA256)."""
    issued = time.time() if now is None else now
    claims = {"d": payload, "exp": int(issued + ttl), "jti": secrets.token_urlsafe(16)}
    body = _b64(orjson.dumps(claims))
    return f"{body}.{_sign(body, key)}"


def _claims(state: str) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(state, str) or state.count(".") != 1 or len(state) > MAX_STATE_LENGTH:
        raise OAuthStateError("malformed state")
    body, signature = state.split(".")
    try:
        claims = orjson.loads(_unb64(body))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise OAuthStateError("malformed state") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("d"), dict):
        raise OAuthStateError("malformed state")
    return body, signature, claims


def read_state(state: str, key: bytes, now: float) -> dict[str, Any]:
    """The payload of a valid state; raises OAuthStateError when forged, malformed or expired."""
    body, signature, claims = _claims(state)
    if not hmac.compare_digest(signature, _sign(body, key)):
        raise OAuthStateError("state signature does not match")
    if not isinstance(claims.get("exp"), int) or now >= claims["exp"]:
        raise OAuthStateError("state has expired")
    return claims["d"]


def state_nonce(state: str) -> str:
    """The state's unique `jti`, for the caller's single-use check (call after read_state)."""
    return str(_claims(state)[2].get("jti", ""))
