from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from app import models
from app.core.errors import CommonErrorCode, FieldError
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import UserError, user_errors
from app.schema.permissions import forms_limit
from app.schema.queries import load_delivery, load_integration
from app.services import deliveries


@strawberry.input(description="Which delivery to send again.")
class DeliveryRetryInput:
    id: strawberry.ID = strawberry.field(description="The delivery's ID (`del_...`).")


@strawberry.type(description="The result of `deliveryRetry`.")
class DeliveryRetryPayload:
    queued: bool = strawberry.field(description="True when the delivery was queued to be sent again now.")
    delivery: t.Delivery | None = strawberry.field(default=None, description="The delivery, as it is now.")
    errors: list[UserError] = strawberry.field(
        description="Why it was not queued (INVALID_STATE while it is pending or being sent); empty on success.")


@strawberry.enum(description="What `deliveriesRecover` sends again.")
class RecoverResend(Enum):
    MATCHING = strawberry.enum_value("MATCHING", description="The integration's deliveries in `statuses` (FAILED by "
                                                             "default) created in the window.")
    ALL = strawberry.enum_value("ALL", description="Every event of the window the integration should have received "
                                                   "as it is set up now: its deliveries again whatever became of them, "
                                                   "and new ones for events it has none of (published while it was "
                                                   "switched off or before it was attached).")


@strawberry.input(description="Which deliveries of an integration to send again.")
class DeliveriesRecoverInput:
    integration_id: strawberry.ID = strawberry.field(description="The integration whose deliveries to recover.")
    since: datetime = strawberry.field(description="Recover deliveries created at or after this moment (UTC when it "
                                                   "has no offset).")
    until: datetime | None = strawberry.field(
        default=None, description="Recover deliveries created at or before this moment; now when left out. "
                                  "OUT_OF_RANGE when before `since`.")
    statuses: list[t.DeliveryStatus] | None = strawberry.field(
        default=None, description="With `resend: MATCHING`, the statuses to send again: FAILED (the default), "
                                  "RETRYING, SUCCEEDED or HELD; PENDING and SENDING are INVALID_STATE.")
    resend: RecoverResend | None = strawberry.field(
        default=None, description="MATCHING (the default): deliveries in `statuses`; ALL: every "
                                                    "event the integration should have received in the window "
                                                    "(INVALID_STATE while it is switched off).")


@strawberry.type(description="The result of `deliveriesRecover`.")
class DeliveriesRecoverPayload:
    queued: int = strawberry.field(description="How many deliveries were queued to be sent (again).")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.type
class DeliveryMutations:
    @strawberry.mutation(description="Sends a delivery again now, whatever happened to it before, unless it is "
                                     "pending or being sent. Needs deliveries:write and the owner or admin role "
                                     "(else FORBIDDEN); another workspace's delivery is NOT_FOUND.")
    async def delivery_retry(
        self, info: Info, input: Annotated[DeliveryRetryInput, strawberry.argument(description="The delivery.")]
    ) -> DeliveryRetryPayload:
        delivery = await load_delivery(info, input.id, ability="deliveries:write")
        async with info.context.unit() as unit:
            done = await deliveries.retry_now(unit, delivery)
        return DeliveryRetryPayload(queued=done.ok, delivery=t.Delivery.of(delivery), errors=user_errors(done.errors))

    @strawberry.mutation(description="Sends again an integration's deliveries of a time window (at most 10,000, "
                                     "oldest first), for after an outage: the FAILED ones by default, those in "
                                     "`statuses`, or with `resend: ALL` every event it should have received. Needs "
                                     "deliveries:write and the owner or admin role (else FORBIDDEN); another "
                                     "workspace's integration is NOT_FOUND.")
    async def deliveries_recover(
        self, info: Info,
        input: Annotated[DeliveriesRecoverInput, strawberry.argument(description="The integration and time range.")],
    ) -> DeliveriesRecoverPayload:
        integration = await load_integration(info, input.integration_id, ability="deliveries:write")
        since, until = t.as_utc(input.since), t.as_utc(input.until)  # comparable, and in the database's range
        if until is not None and until < since:
            return DeliveriesRecoverPayload(queued=0, errors=user_errors([FieldError(
                "until", "must not be before since", CommonErrorCode.OUT_OF_RANGE)]))
        limit = forms_limit(info)  # a portal session limited to some forms recovers only theirs
        form_ids = None if limit is None else await models.Form.filter(
            workspace_id=integration.workspace_id, slug__in=list(limit)).values_list("id", flat=True)
        async with info.context.unit() as unit:
            if input.resend == RecoverResend.ALL:
                done = await deliveries.resend_all(unit, integration, since, until, form_ids=form_ids)
            else:
                statuses = [models.DeliveryStatus(s.value) for s in input.statuses or [t.DeliveryStatus.FAILED]]
                done = await deliveries.recover(unit, integration, since, until, statuses, form_ids=form_ids)
        return DeliveriesRecoverPayload(queued=done.value or 0, errors=user_errors(done.errors))
