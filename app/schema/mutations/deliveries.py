from __future__ import annotations

from datetime import datetime

import strawberry

from app.core.errors import CommonErrorCode, FieldError
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import UserError, user_errors
from app.schema.queries import load_delivery, load_integration
from app.services import deliveries


@strawberry.input
class DeliveryRetryInput:
    id: strawberry.ID


@strawberry.type
class DeliveryRetryPayload:
    queued: bool
    delivery: t.Delivery | None = None
    errors: list[UserError]


@strawberry.input
class DeliveriesRecoverInput:
    integration_id: strawberry.ID
    since: datetime
    until: datetime | None = None


@strawberry.type
class DeliveriesRecoverPayload:
    queued: int
    errors: list[UserError]


@strawberry.type
class DeliveryMutations:
    @strawberry.mutation
    async def delivery_retry(self, info: Info, input: DeliveryRetryInput) -> DeliveryRetryPayload:
        delivery = await load_delivery(info, input.id, ability="deliveries:write")
        async with info.context.unit() as unit:
            done = await deliveries.retry_now(unit, delivery)
        return DeliveryRetryPayload(queued=done.ok, delivery=t.Delivery.of(delivery), errors=user_errors(done.errors))

    @strawberry.mutation
    async def deliveries_recover(self, info: Info, input: DeliveriesRecoverInput) -> DeliveriesRecoverPayload:
        integration = await load_integration(info, input.integration_id, ability="deliveries:write")
        since, until = t.as_utc(input.since), t.as_utc(input.until)  # comparable, and in the database's range
        if until is not None and until < since:
            return DeliveriesRecoverPayload(queued=0, errors=user_errors([FieldError(
                "until", "must not be before since", CommonErrorCode.OUT_OF_RANGE)]))
        async with info.context.unit() as unit:
            done = await deliveries.recover(unit, integration, since, until)
        return DeliveriesRecoverPayload(queued=done.value or 0, errors=user_errors(done.errors))
