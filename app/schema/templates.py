"""`templatePreview`: what a payload template (`config.template`) makes of an event, before it is saved."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.schema.context import Info
from app.schema.errors import UserError, user_errors
from app.schema.permissions import require_ability
from app.schema.types import IntegrationType
from app.services import templates


@strawberry.input(description="A template and the event to try it on.")
class TemplatePreviewInput:
    template: str = strawberry.field(description="The JMESPath expression, as it would be set in `config.template` "
                                                 "(at most 4 KiB).")
    event: str = strawberry.field(description="The event type, such as `form.submitted`: the envelope's `type`.")
    payload: JSON | None = strawberry.field(default=None, description="The event payload (a JSON object, at most "
                                                                      "256 KiB): the envelope's `data`. Left out, "
                                                                      "the type's sample payload.")
    type: IntegrationType | None = strawberry.field(default=None, description="The integration type whose body "
                                                    "to show: WEBHOOK (when left out), SLACK or DISCORD.")


@strawberry.type(description="What the template makes of the event, or why it cannot.")
class TemplatePreviewPayload:
    output: JSON | None = strawberry.field(description="The request body the integration would send (a Slack or "
                                                       "Discord string output is shown as the message it becomes); "
                                                       "null when there are errors.")
    errors: list[UserError] = strawberry.field(description="What is wrong: `template` (INVALID_TEMPLATE, a "
                                                           "syntax error or a failure on this event), `event`, "
                                                           "`payload` or `type`.")


@strawberry.type
class TemplateQueries:
    @strawberry.field(description="Evaluates a payload template on an event without saving or sending anything, "
                                  "under the limits deliveries have. Needs integrations:write (else FORBIDDEN).")
    def template_preview(
        self, info: Info,
        input: Annotated[TemplatePreviewInput, strawberry.argument(description="The template and event.")],  # noqa: A002
    ) -> TemplatePreviewPayload:
        require_ability(info, "integrations:write")
        done = templates.preview(input.template, input.event, input.payload,
                                 (input.type or IntegrationType.WEBHOOK).value)
        if not done.ok:
            return TemplatePreviewPayload(output=None, errors=user_errors(done.errors))
        return TemplatePreviewPayload(output=done.value, errors=[])
