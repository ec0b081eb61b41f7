"""Dropping a WebSocket client that fell too far behind on live updates.

It is closed with 1013 (Try Again Later) and a reason naming SLOW_SUBSCRIBER; graphql-ws
clients treat 1013 as retryable and reconnect.
"""

from __future__ import annotations

import logging
from typing import Any

from app.realtime.connections import close_soon

log = logging.getLogger(__name__)

CLOSE_CODE = 1013


def close_reason(waiting: int) -> str:
    return f"SLOW_SUBSCRIBER: more than {waiting} live updates were waiting; reconnect"


def drop(websocket: Any, waiting: int, grace: float) -> None:
    log.warning("dropping live-update client %s: more than %d updates waiting", websocket.scope.get("client"), waiting)
    close_soon(websocket, CLOSE_CODE, close_reason(waiting), grace)
