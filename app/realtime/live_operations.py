"""Which WebSocket operation a subscription resolver is running for, so it can send a frame itself.

A live update that a thousand dashboards see the same way is executed once (app.schema.shared_events);
handing each subscriber that result back through graphql-core's subscription loop, Strawberry's stream
and extension hooks and the protocol handler cost more than the socket write. The protocol handlers
set `CURRENT` while they start an operation, so the operation's task (which copies the context when
it is created) knows its id and handler, and a resolver can send a finished result's `next` (or the
legacy protocol's `data`) message through the handler's own `send_message`: the same checks (an
operation completed or stopped gets nothing), the same encoding, the same socket.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

TRANSPORT_WS = "next"  # graphql-transport-ws
LEGACY_WS = "data"  # graphql-ws


@dataclass(frozen=True, slots=True)
class LiveOperation:
    handler: Any  # Strawberry's protocol handler of the connection
    id: str
    kind: str  # TRANSPORT_WS or LEGACY_WS

    async def send_data(self, data: Any) -> None:
        """Sends `{"data": data}` as this operation's next result, as the protocol handler would. Called from
        the operation's own task; nothing is sent once the operation was completed or stopped (its id may
        then already name a new operation of the client's, run by another task)."""
        task = asyncio.current_task()
        if self.kind == TRANSPORT_WS:
            operation = self.handler.operations.get(self.id)
            if operation is not None and operation.task is task:  # its own check stops a `next` after `complete`
                await operation.send_operation_message({"id": self.id, "type": "next", "payload": {"data": data}})
        elif self.handler.tasks.get(self.id) is task:
            await self.handler.send_message({"type": "data", "id": self.id, "payload": {"data": data}})


CURRENT: ContextVar[LiveOperation | None] = ContextVar("hookyard_live_operation", default=None)
