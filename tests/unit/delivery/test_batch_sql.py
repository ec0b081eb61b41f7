"""The hand-written claim UPDATE, on SQLite and on PostgreSQL: which deliveries a worker may take,
and that two workers claiming the same deliveries at once never both get one; and the record of a
wave of attempts, written whole or not at all."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.exceptions import IntegrityError

from app.delivery import batch_sql
from app.delivery.sender import RECORDED_FIELDS
from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Form, Integration, Workspace

LEASE = timedelta(seconds=90)


@pytest.fixture(autouse=True)
def database(each_db):
    return each_db


@pytest.fixture
async def parent() -> tuple[Workspace, Event, Integration]:
    workspace = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Claims")
    event = await Event.create(workspace=workspace, type="session.completed", payload={"n": 1})
    integration = await Integration.create(workspace=workspace, type="webhook", name="hook")
    return workspace, event, integration


@pytest.fixture
def make(parent):
    workspace, event, integration = parent

    async def make_(status: DeliveryStatus, *, next_attempt_at: datetime | None = None,
                    locked_until: datetime | None = None) -> Delivery:
        return await Delivery.create(workspace=workspace, event=event, integration=integration,
                                     event_type=event.type, status=status, next_attempt_at=next_attempt_at,
                                     locked_until=locked_until)

    return make_


async def claim(deliveries: list[Delivery], now: datetime, *, force: bool = False) -> set[str]:
    claimed = await batch_sql.claim([d.id for d in deliveries], now, now + LEASE, now + timedelta(seconds=1), force)
    assert len(claimed) == len(set(claimed)), f"an id came back twice: {claimed}"
    return set(claimed)


def ids(*deliveries: Delivery) -> set[str]:
    return {d.id for d in deliveries}


async def test_due_pending_and_retrying_deliveries_are_claimed_and_leased(make):
    now = datetime.now(UTC)
    new = await make(DeliveryStatus.PENDING)
    scheduled = await make(DeliveryStatus.PENDING, next_attempt_at=now - timedelta(seconds=5))
    retry_due = await make(DeliveryStatus.RETRYING, next_attempt_at=now - timedelta(minutes=1))
    retry_almost_due = await make(DeliveryStatus.RETRYING, next_attempt_at=now + timedelta(milliseconds=500))

    assert await claim([new, scheduled, retry_due, retry_almost_due], now) == ids(
        new, scheduled, retry_due, retry_almost_due)

    for delivery in (new, scheduled, retry_due, retry_almost_due):
        row = await Delivery.get(id=delivery.id)
        assert row.status == DeliveryStatus.SENDING
        assert row.locked_until == now + LEASE
        assert row.updated_at == now


async def test_deliveries_not_yet_due_are_left_alone(make):
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    waiting = await make(DeliveryStatus.RETRYING, next_attempt_at=later)
    scheduled = await make(DeliveryStatus.PENDING, next_attempt_at=later)

    assert await claim([waiting, scheduled], now) == set()
    row = await Delivery.get(id=waiting.id)
    assert (row.status, row.next_attempt_at, row.locked_until) == (DeliveryStatus.RETRYING, later, None)
    assert (await Delivery.get(id=scheduled.id)).status == DeliveryStatus.PENDING


async def test_a_send_whose_lease_ran_out_is_claimed_again_a_live_one_is_not(make):
    now = datetime.now(UTC)
    abandoned = await make(DeliveryStatus.SENDING, locked_until=now - timedelta(seconds=1))
    in_flight = await make(DeliveryStatus.SENDING, locked_until=now + timedelta(seconds=30))

    assert await claim([abandoned, in_flight], now) == ids(abandoned)
    assert (await Delivery.get(id=abandoned.id)).locked_until == now + LEASE
    assert (await Delivery.get(id=in_flight.id)).locked_until == now + timedelta(seconds=30)
    # Forcing (a test send from the API) does not take a delivery another worker is sending either.
    assert await claim([in_flight], now, force=True) == set()


async def test_finished_and_held_deliveries_are_never_claimed(make):
    now = datetime.now(UTC)
    finished = [await make(status) for status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED,
                                                    DeliveryStatus.HELD)]
    assert await claim(finished, now) == set()
    assert [d.status for d in await Delivery.filter(id__in=ids(*finished)).order_by("status")] == [
        DeliveryStatus.FAILED, DeliveryStatus.HELD, DeliveryStatus.SUCCEEDED]


async def test_force_claims_unfinished_deliveries_whether_due_or_not(make):
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    pending = await make(DeliveryStatus.PENDING, next_attempt_at=later)
    retrying = await make(DeliveryStatus.RETRYING, next_attempt_at=later)
    failed = await make(DeliveryStatus.FAILED)
    succeeded = await make(DeliveryStatus.SUCCEEDED)
    held = await make(DeliveryStatus.HELD)

    assert await claim([pending, retrying, failed, succeeded, held], now, force=True) == ids(pending, retrying, failed)
    assert (await Delivery.get(id=succeeded.id)).status == DeliveryStatus.SUCCEEDED
    assert (await Delivery.get(id=held.id)).status == DeliveryStatus.HELD


async def test_only_the_ids_asked_for_are_claimed_and_each_comes_back_once(make):
    now = datetime.now(UTC)
    due = [await make(DeliveryStatus.PENDING) for _ in range(6)]
    other = await make(DeliveryStatus.PENDING)

    assert await batch_sql.claim([], now, now + LEASE, now, False) == []
    # Three ids: padded to a bucket of four by repeating the last one.
    assert await claim(due[:3], now) == ids(*due[:3])
    # Already claimed, unknown and repeated ids are skipped.
    asked = [due[0], due[3], due[3], due[4], due[5]]
    unknown = Delivery(id="del_does_not_exist")
    assert await claim([*asked, unknown], now) == ids(due[3], due[4], due[5])
    assert (await Delivery.get(id=other.id)).status == DeliveryStatus.PENDING


@pytest.mark.parametrize("callers", [2, 4])
async def test_concurrent_claims_of_the_same_deliveries_give_each_to_exactly_one_caller(make, callers):
    rng = random.Random(callers)
    for _ in range(5):
        now = datetime.now(UTC)
        due = [await make(DeliveryStatus.PENDING) for _ in range(24)]
        due += [await make(DeliveryStatus.SENDING, locked_until=now - timedelta(seconds=1)) for _ in range(8)]
        orders = [rng.sample(due, len(due)) for _ in range(callers)]

        results = await asyncio.gather(*(claim(order, now) for order in orders))

        everyone = [delivery_id for result in results for delivery_id in result]
        assert sorted(everyone) == sorted(ids(*due)), "a delivery was claimed twice, or by nobody"
        assert await Delivery.filter(id__in=ids(*due), status=DeliveryStatus.SENDING).count() == len(due)


async def test_a_batch_loads_each_delivery_with_its_event_integration_workspace_and_form(parent):
    workspace, event, integration = parent
    other = await Integration.create(workspace=workspace, type="webhook", name="other", config={"a": 1})
    form = await Form.create(workspace=workspace, slug="signup", name="Signup")
    second_event = await Event.create(workspace=workspace, form=form, type="form.submitted", payload={"n": 2})
    made = [await Delivery.create(workspace=workspace, event=ev, integration=to, form=ev_form, event_type=ev.type)
            for ev, ev_form in ((event, None), (second_event, form)) for to in (integration, other)]

    loaded = {d.id: d for d in await batch_sql.load_for_send([d.id for d in made])}
    assert set(loaded) == ids(*made)
    for d in made:
        got = loaded[d.id]
        assert (got.event.id, got.event.payload) == (d.event_id, {"n": 1} if d.event_id == event.id else {"n": 2})
        assert (got.integration.id, got.workspace.slug) == (d.integration_id, workspace.slug)
        assert got.form is None if d.form_id is None else got.form.slug == "signup"
    assert loaded[made[1].id].integration.config == {"a": 1}
    # One object per integration in a batch; one event object per delivery (a kind may change its payload).
    assert loaded[made[0].id].integration is loaded[made[2].id].integration
    assert loaded[made[0].id].integration is not loaded[made[1].id].integration
    assert loaded[made[0].id].event is not loaded[made[1].id].event


def attempt_of(delivery: Delivery, now: datetime, code: int) -> DeliveryAttempt:
    """The delivery's state after an answered send, set in memory as the sender sets it, and its attempt."""
    delivery.attempt_count += 1
    delivery.status = DeliveryStatus.SUCCEEDED if code < 400 else DeliveryStatus.RETRYING
    delivery.response_code, delivery.duration_ms, delivery.updated_at = code, 12, now
    delivery.request = {"url": "https://example.test/hook", "headers": {"webhook-id": delivery.id}}
    delivery.locked_until = None
    return DeliveryAttempt(delivery_id=delivery.id, number=delivery.attempt_count, trigger="automatic",
                           request_url="https://example.test/hook", response_code=code,
                           response_headers={"x-receiver": "yes"}, response_body="ok", duration_ms=12, created_at=now)


async def test_a_wave_of_attempts_is_recorded_with_each_delivery_s_new_state(make):
    now = datetime.now(UTC)
    deliveries = [await make(DeliveryStatus.SENDING, locked_until=now + LEASE) for _ in range(3)]
    attempts = [attempt_of(d, now, code) for d, code in zip(deliveries, (200, 500, 201), strict=True)]
    await batch_sql.record(attempts, deliveries, RECORDED_FIELDS)
    for delivery, code in zip(deliveries, (200, 500, 201), strict=True):
        stored = await Delivery.get(id=delivery.id)
        assert (stored.status, stored.attempt_count, stored.response_code, stored.locked_until) == (
            DeliveryStatus.SUCCEEDED if code < 400 else DeliveryStatus.RETRYING, 1, code, None)
        assert stored.request["headers"] == {"webhook-id": delivery.id}
        [attempt] = await DeliveryAttempt.filter(delivery_id=delivery.id)
        assert (attempt.number, attempt.response_code, attempt.response_headers, attempt.response_body) == (
            1, code, {"x-receiver": "yes"}, "ok")
    # Recording the same attempts again is refused (their ids are taken), as Tortoise's own INSERT is.
    with pytest.raises(IntegrityError):
        await batch_sql.record(attempts[:1], deliveries[:1], RECORDED_FIELDS)


async def test_a_wave_that_cannot_be_written_whole_leaves_nothing_written(make):
    now = datetime.now(UTC)
    deliveries = [await make(DeliveryStatus.SENDING, locked_until=now + LEASE) for _ in range(3)]
    attempts = [attempt_of(d, now, 200) for d in deliveries]
    attempts[2].id = attempts[0].id  # the last row fails: the two before it must not stay written
    with pytest.raises(IntegrityError):
        await batch_sql.record(attempts, deliveries, RECORDED_FIELDS)
    assert await DeliveryAttempt.filter(delivery_id__in=[d.id for d in deliveries]).count() == 0
    for delivery in deliveries:
        stored = await Delivery.get(id=delivery.id)
        assert (stored.status, stored.attempt_count) == (DeliveryStatus.SENDING, 0)


async def test_deliveries_put_back_together_are_each_written(make):
    """`save_many` (sends put back, lanes woken): each row gets its own new state, in one round trip."""
    later = datetime.now(UTC) + LEASE
    deliveries = [await make(DeliveryStatus.SENDING, locked_until=later) for _ in range(3)]
    for n, delivery in enumerate(deliveries):
        delivery.status, delivery.locked_until = DeliveryStatus.PENDING, None
        delivery.next_attempt_at = later + timedelta(seconds=n)
    await batch_sql.save_many(deliveries, ("status", "next_attempt_at", "locked_until"))
    for n, delivery in enumerate(deliveries):
        stored = await Delivery.get(id=delivery.id)
        assert (stored.status, stored.next_attempt_at, stored.locked_until) == (
            DeliveryStatus.PENDING, later + timedelta(seconds=n), None)


async def test_a_publish_reads_its_workspaces_enabled_integrations_with_their_settings(parent):
    workspace, _, hook = parent
    other = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Other")
    await Integration.create(workspace=other, type="webhook", name="not ours")
    await Integration.create(workspace=workspace, type="webhook", name="off", enabled=False)
    chat = await Integration.create(workspace=workspace, type="slack", name="chat", events=["invoice.*"],
                                    config={"ordering": {"keyPath": "customer.id"}})
    columns = ("id", "type", "events", "scope", "status", "config")
    for _ in range(2):  # the second time from the SQL kept
        found = await batch_sql.enabled_integrations(workspace.id, columns)
        got = {i.id: (i.type, i.events, i.scope, i.status, i.config) for i in found}
        assert got == {hook.id: (hook.type, hook.events, hook.scope, hook.status, hook.config),
                       chat.id: ("slack", ["invoice.*"], chat.scope, chat.status,
                                 {"ordering": {"keyPath": "customer.id"}})}
