"""The delivery log's queries and its capped count, on SQLite and on PostgreSQL: the form filter goes by a
subquery, the date range by the moment the id records, and `totalCount` stops at its cap."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.core import ids
from app.delivery.log import DeliveryFilter, delivery_query
from app.models import Delivery, DeliveryStatus, Event, Form, Integration, Workspace
from app.schema import relay


@pytest.fixture(autouse=True)
def database(each_db):
    return each_db


@pytest.fixture
async def log() -> tuple[Workspace, list[Delivery], Form]:
    workspace = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Log")
    other = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Other")
    form = await Form.create(workspace=workspace, slug="signup", name="Sign-up")
    await Form.create(workspace=other, slug="signup", name="Same slug elsewhere")
    integration = await Integration.create(workspace=workspace, type="webhook", name="hook")
    event = await Event.create(workspace=workspace, type="form.submitted", payload={})
    deliveries = [await Delivery.create(workspace=workspace, event=event, integration=integration,
                                        form=form if n % 2 else None, event_type=event.type,
                                        status=DeliveryStatus.SUCCEEDED) for n in range(7)]
    return workspace, deliveries, form


async def _ids(qs) -> set[str]:
    return set(await qs.values_list("id", flat=True))


async def test_capped_count_stops_at_the_cap(log):
    workspace, deliveries, _ = log
    qs = delivery_query(workspace.id)
    assert await relay.capped_count(qs, 3) == 3
    assert await relay.capped_count(qs, 100) == len(deliveries)
    capped = relay.CappedCount(qs, cap=5)
    assert (await capped.counted(), await capped.counted()) == (6, 6)  # one past the cap: there are more
    exact = relay.CappedCount(qs, cap=7)
    assert await exact.counted() == 7
    assert await relay.capped_count(delivery_query(workspace.id, DeliveryFilter(form_slug="signup")), 100) == 3


async def test_the_form_filter_and_a_portal_sessions_forms(log):
    workspace, deliveries, form = log
    with_form = {d.id for d in deliveries if d.form_id == form.id}
    assert await _ids(delivery_query(workspace.id, DeliveryFilter(form_slug="signup"))) == with_form
    assert await _ids(delivery_query(workspace.id, DeliveryFilter(form_slug="nope"))) == set()
    assert await _ids(delivery_query(workspace.id, forms=["signup"])) == {d.id for d in deliveries}
    assert await _ids(delivery_query(workspace.id, forms=[])) == {d.id for d in deliveries} - with_form


async def test_the_date_range_goes_by_the_moment_the_id_records(log):
    workspace, deliveries, _ = log
    made = {d.id: d.created_at for d in deliveries}  # stamped a moment after the id was made
    start, end = min(made.values()), max(made.values())
    assert await _ids(delivery_query(workspace.id, DeliveryFilter(since=start - timedelta(seconds=1),
                                                                  until=end))) == set(made)
    assert await _ids(delivery_query(workspace.id, DeliveryFilter(since=end + timedelta(seconds=1)))) == set()
    assert await _ids(delivery_query(workspace.id, DeliveryFilter(until=start - timedelta(seconds=1)))) == set()
    newest = max(made)
    moment = datetime.fromtimestamp(ids_time(newest), UTC)
    same_millisecond = {i for i in made if i[:14] == newest[:14]}  # "del_" and the ten time characters
    assert await _ids(delivery_query(workspace.id, DeliveryFilter(since=moment))) == same_millisecond
    assert newest not in await _ids(delivery_query(workspace.id, DeliveryFilter(until=moment - timedelta(
        milliseconds=1))))
    edges = DeliveryFilter(since=datetime.min.replace(tzinfo=UTC), until=datetime.max.replace(tzinfo=UTC))
    assert await _ids(delivery_query(workspace.id, edges)) == set(made)


def ids_time(identifier: str) -> float:
    """The seconds since the epoch an id records (its first ten base-32 characters, in milliseconds)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    millis = 0
    for char in identifier.partition("_")[2][:10]:
        millis = millis * 32 + alphabet.index(char)
    return millis / 1000


def test_time_bounds_enclose_the_ids_made_at_that_moment():
    before = datetime.now(UTC) - timedelta(milliseconds=2)
    made = ids.delivery_id()
    after = datetime.now(UTC) + timedelta(milliseconds=2)
    assert ids.time_bound("del", before, upper=False) <= made <= ids.time_bound("del", after, upper=True)
    assert ids.time_bound("del", datetime.min.replace(tzinfo=UTC), upper=False) == "del_" + "0" * 26
    assert ids.time_bound("del", datetime.max.replace(tzinfo=UTC), upper=True).startswith("del_")
