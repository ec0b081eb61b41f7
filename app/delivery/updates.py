"""The live delivery update: one message type that the engine encodes and every API process decodes.

Workers and the API publish a `DeliveryUpdate` on one Redis channel whenever a delivery changes
state; each API process fans it out to its own WebSocket subscribers. The updates of one step (a
publish's PENDING deliveries, a batch's recorded attempts) share a message: a JSON array of up to
PER_MESSAGE updates, so every API process reads one message per step, not one per delivery. A
message holding a single update object (as older versions sent) is read too. The message carries the
delivery's columns as `DeliveryState` (all but the ones named in `NOT_CARRIED`) and the attempt's
as `AttemptState`; a unit test holds both against the models, so a new column is either carried
or named here, never silently missing from live updates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson
from redis.asyncio import Redis

from app.models import Delivery, DeliveryAttempt, DeliveryStatus

CHANNEL = "hookyard:delivery-updates"
# Updates per message: a batch-published step may change thousands of deliveries at once.
PER_MESSAGE = 100
# Delivery columns live updates leave out: the send lease is the engine's own bookkeeping.
NOT_CARRIED = frozenset({"locked_until"})


@dataclass(frozen=True, slots=True)
class DeliveryState:
    id: str
    workspace_id: str
    event_id: str
    integration_id: str
    form_id: str | None
    attachment_id: str | None
    event_type: str
    status: DeliveryStatus
    is_test: bool
    attempt_count: int
    next_attempt_at: datetime | None
    response_code: int | None
    duration_ms: int | None
    last_error: str | None
    request: dict | None
    response: dict | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    ordering_key: str | None = None
    blocked_by: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptState:
    id: str
    delivery_id: str
    number: int
    trigger: str
    request_url: str | None
    response_code: int | None
    response_headers: dict | None
    response_body: str | None
    duration_ms: int | None
    error: str | None
    created_at: datetime


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


# How a decoded JSON value becomes a field's value, for the fields that are not plain JSON.
_DECODE: dict[str, Callable[[Any], Any]] = {
    "status": DeliveryStatus,
    "next_attempt_at": _when,
    "created_at": _when,
    "updated_at": _when,
    "delivered_at": _when,
}
_DELIVERY_FIELDS = tuple(f.name for f in fields(DeliveryState))
_ATTEMPT_FIELDS = tuple(f.name for f in fields(AttemptState))
# A state's fields, read off a model in one call, in the dataclass's order.
_delivery_values = attrgetter(*_DELIVERY_FIELDS)
_attempt_values = attrgetter(*_ATTEMPT_FIELDS)


def _read(cls: type, names: tuple[str, ...], data: dict[str, Any]) -> Any:
    # .get: a message from a process of the previous version lacks the fields added since (all optional).
    return cls(**{name: _DECODE[name](data.get(name)) if name in _DECODE else data.get(name) for name in names})


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    delivery: DeliveryState
    attempt: AttemptState | None
    form_slug: str | None
    at: datetime

    @classmethod
    def of(cls, delivery: Delivery, attempt: DeliveryAttempt | None = None,
           form_slug: str | None = None) -> DeliveryUpdate:
        """The update for a delivery's current state (and the attempt that just ended, if any)."""
        return cls(
            delivery=DeliveryState(*_delivery_values(delivery)),
            attempt=AttemptState(*_attempt_values(attempt)) if attempt else None,
            form_slug=form_slug,
            at=datetime.now(UTC),
        )

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def decode(cls, raw: bytes | str) -> DeliveryUpdate:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryUpdate:
        attempt = data.get("attempt")
        return cls(
            delivery=_read(DeliveryState, _DELIVERY_FIELDS, data["delivery"]),
            attempt=_read(AttemptState, _ATTEMPT_FIELDS, attempt) if attempt else None,
            form_slug=data.get("form_slug"),
            at=_when(data["at"]),
        )


def encode_messages(updates: Sequence[DeliveryUpdate]) -> list[bytes]:
    """The messages carrying `updates`, in order: arrays of at most PER_MESSAGE."""
    return [orjson.dumps(updates[n:n + PER_MESSAGE]) for n in range(0, len(updates), PER_MESSAGE)]


def decode_message(raw: bytes | str) -> list[DeliveryUpdate]:
    """The updates of one message: an array of them, or a single one."""
    data = orjson.loads(raw)
    if isinstance(data, list):
        return [DeliveryUpdate.from_dict(item) for item in data]
    return [DeliveryUpdate.from_dict(data)]


def form_slug_of(delivery: Delivery) -> str | None:
    """The slug of a delivery fetched with its form (select_related("form"))."""
    return delivery.form.slug if delivery.form_id and delivery.form else None


def add_publish(pipe: Any, updates: Sequence[DeliveryUpdate]) -> None:
    """Adds the messages carrying `updates` to a pipeline."""
    for message in encode_messages(updates):
        pipe.publish(CHANNEL, message)


async def publish(redis: Redis | None, updates: Sequence[DeliveryUpdate]) -> None:
    if redis is None or not updates:
        return
    messages = encode_messages(updates)
    if len(messages) == 1:
        await redis.publish(CHANNEL, messages[0])
        return
    async with redis.pipeline(transaction=False) as pipe:
        for message in messages:
            pipe.publish(CHANNEL, message)
        await pipe.execute()


async def announce(redis: Redis | None, deliveries: list[Delivery]) -> None:
    """Publishes the current state of deliveries fetched with their form."""
    await publish(redis, [DeliveryUpdate.of(d, None, form_slug_of(d)) for d in deliveries])
