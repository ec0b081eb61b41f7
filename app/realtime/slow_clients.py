"""Dropping a WebSocket client that fell too far behind on live updates.

It is closed with 1013 (Try Again Later) and a reason naming SLOW_SUBSCRIBER; graphql-ws
clients treat 1013 as retryable and reconnect.
"""

from __future__ import annotations

from typing import Any

from app.core.logging import get_logger
from app.realtime.connections import client_label, close_soon

log = get_logger(__name__)

CLOSE_CODE = 1013


def close_reason(waiting: int) -> str:
    return f"SLOW_SUBSCRIBER: more than {waiting} live updates were waiting; reconnect"


def drop(websocket: Any, waiting: int, grace: float) -> None:
    log.warning("live.client_dropped", client=client_label(websocket.scope), waiting=waiting,
                reason="too many live updates waiting")
    close_soon(websocket, CLOSE_CODE, close_reason(waiting), grace)
