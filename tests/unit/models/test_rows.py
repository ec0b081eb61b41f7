"""`new_row`: the instance `Model(**values)` makes, without its per-field checks, saved and read back alike."""

from __future__ import annotations

from datetime import UTC, datetime

from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Workspace
from app.models.integration import Integration
from app.models.rows import new_row


def _state(row) -> dict:
    return {k: v for k, v in row.__dict__.items() if k != "id"}


async def test_a_new_row_is_the_instance_the_model_makes(db):
    now = datetime.now(UTC)
    delivery = dict(workspace_id="ws_1", event_id="evt_1", integration_id="int_1", form_id=None, attachment_id=None,
                    event_type="order.paid", ordering_key="o-1", status=DeliveryStatus.PENDING, next_attempt_at=now,
                    created_at=now, updated_at=now)
    attempt = dict(delivery_id="del_1", number=1, trigger="automatic", request_url="https://example.com/hook",
                   response_code=200, response_headers={"content-type": "text/plain"}, response_body="ok",
                   duration_ms=12, error=None, created_at=now)
    for model, values in ((Delivery, delivery), (DeliveryAttempt, attempt)):
        made, fast = model(**values), new_row(model, **values)
        assert _state(fast) == _state(made)
        assert fast.id != made.id and fast.id[:4] == made.id[:4]  # a new id of its own, like the model's default


async def test_new_rows_get_fresh_defaults_each(db):
    first, second = new_row(Delivery, event_type="a.b"), new_row(Delivery, event_type="a.b")
    assert first.id != second.id
    assert (first.attempt_count, first.is_test, first.status, first.blocked_by) == \
        (0, False, DeliveryStatus.PENDING, None)


async def test_a_new_row_saves_and_reads_back_as_the_model_would(db):
    workspace = await Workspace.create(name="Rows", slug="rows")
    integration = await Integration.create(workspace=workspace, name="hook", type="webhook", config={})
    event = await Event.create(workspace=workspace, type="order.paid", payload={"n": 1})
    now = datetime.now(UTC)
    fast = new_row(Delivery, workspace_id=workspace.id, event_id=event.id, integration_id=integration.id,
                   event_type=event.type, status=DeliveryStatus.PENDING, next_attempt_at=now, created_at=now,
                   updated_at=now)
    await fast.save()
    attempt = new_row(DeliveryAttempt, delivery_id=fast.id, number=1, trigger="automatic", response_code=201,
                      response_headers={"x": "y"}, duration_ms=5, created_at=now)
    await DeliveryAttempt.bulk_create([attempt])
    loaded = await Delivery.get(id=fast.id).prefetch_related("attempts")
    assert (loaded.event_id, loaded.integration_id, loaded.status, loaded.attempt_count) == \
        (event.id, integration.id, DeliveryStatus.PENDING, 0)
    assert [(a.id, a.response_code, a.response_headers) for a in loaded.attempts] == [(attempt.id, 201, {"x": "y"})]
