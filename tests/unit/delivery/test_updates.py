"""The live delivery update: what a worker encodes, every API process decodes unchanged; and every
column of a delivery and of an attempt is carried (or named as left out), so none goes missing."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from tortoise.fields.relational import ForeignKeyFieldInstance, OneToOneFieldInstance
from tortoise.models import Model

from app.delivery import updates
from app.delivery.updates import AttemptState, DeliveryState, DeliveryUpdate
from app.models import Delivery, DeliveryAttempt, DeliveryStatus

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True)
def models(orm_models):
    return orm_models


def columns(model: type[Model]) -> set[str]:
    """The model's table columns, foreign keys by their `<name>_id` column."""
    names = set()
    for name, field in model._meta.fields_map.items():
        if isinstance(field, ForeignKeyFieldInstance | OneToOneFieldInstance):
            names.add(f"{name}_id")
        elif field.has_db_field:
            names.add(name)
    assert names == set(model._meta.db_fields), "fields_map and db_fields disagree"
    return names


def state_fields(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def test_every_delivery_column_is_carried_or_named_as_left_out():
    delivery_columns = columns(Delivery)
    assert delivery_columns - updates.NOT_CARRIED == state_fields(DeliveryState), (
        "a Delivery column must be a DeliveryState field or be listed in updates.NOT_CARRIED")
    assert updates.NOT_CARRIED <= delivery_columns, "NOT_CARRIED names a column Delivery does not have"


def test_every_attempt_column_is_carried():
    assert columns(DeliveryAttempt) == state_fields(AttemptState)


def a_delivery(**values) -> Delivery:
    defaults = dict(
        id="del_1", workspace_id="ws_1", event_id="evt_1", integration_id="int_1", form_id="frm_1",
        attachment_id="fi_1", event_type="session.completed", status=DeliveryStatus.RETRYING, is_test=False,
        attempt_count=2, next_attempt_at=NOW + timedelta(seconds=300), locked_until=NOW + timedelta(seconds=90),
        response_code=503, duration_ms=87, last_error="HTTP 503",
        request={"method": "POST", "url": "https://hooks.example.com/in", "headers": {"a": "b"}, "body": "{}"},
        response={"status": 503, "headers": {}, "body": "busy", "truncated": False},
        created_at=NOW - timedelta(minutes=5), updated_at=NOW, delivered_at=None,
    )
    return Delivery(**{**defaults, **values})


def an_attempt(**values) -> DeliveryAttempt:
    defaults = dict(
        id="att_1", delivery_id="del_1", number=2, trigger="automatic", request_url="https://hooks.example.com/in",
        response_code=503, response_headers={"retry-after": "120"}, response_body="busy", duration_ms=87,
        error="HTTP 503", created_at=NOW,
    )
    return DeliveryAttempt(**{**defaults, **values})


@pytest.mark.parametrize(
    ("delivery", "attempt", "form_slug"),
    [
        (a_delivery, an_attempt, "contact"),
        (a_delivery, None, None),
        (lambda: a_delivery(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None, delivered_at=NOW, is_test=True,
                            form_id=None, attachment_id=None, request=None, response=None, last_error=None),
         lambda: an_attempt(response_headers=None, response_body=None, error=None, response_code=200), None),
    ],
    ids=["retrying-with-attempt", "without-attempt", "succeeded-test-send"],
)
def test_an_update_decodes_to_what_was_encoded(delivery, attempt, form_slug):
    update = DeliveryUpdate.of(delivery(), attempt() if attempt else None, form_slug)
    decoded = DeliveryUpdate.decode(update.encode())
    assert decoded == update
    assert isinstance(decoded.delivery.status, DeliveryStatus)
    assert decoded.delivery.next_attempt_at is None or decoded.delivery.next_attempt_at.tzinfo is not None
    # A str (as Redis clients may hand it over) decodes the same.
    assert DeliveryUpdate.decode(update.encode().decode()) == update


def test_an_update_leaves_out_the_send_lease():
    raw = orjson.loads(DeliveryUpdate.of(a_delivery()).encode())
    assert "locked_until" not in raw["delivery"]
    assert raw["delivery"]["status"] == "RETRYING"
    assert raw["attempt"] is None


def test_a_step_s_updates_travel_in_few_messages_and_come_out_whole():
    batch = [DeliveryUpdate.of(a_delivery(id=f"del_{n}")) for n in range(updates.PER_MESSAGE * 2 + 5)]
    messages = updates.encode_messages(batch)
    assert len(messages) == 3
    assert [u for m in messages for u in updates.decode_message(m)] == batch
    # A message of one update object, as versions before the arrays sent, still reads.
    assert updates.decode_message(batch[0].encode()) == [batch[0]]
