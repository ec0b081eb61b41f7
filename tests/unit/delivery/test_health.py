"""Integration health after each attempt, on a real database: ACTIVE, FAILING, DISABLED and NEEDS_REAUTH,
and the system events those transitions publish (returned to the caller, exactly once)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.config import Settings
from app.delivery import health
from app.delivery.runtime import Runtime
from app.integrations.base import Outcome
from app.models import (
    Delivery,
    DeliveryStatus,
    Form,
    FormIntegration,
    Integration,
    IntegrationStatus,
    Workspace,
)

DISABLE_AFTER = 600
OK = Outcome(success=True)
FAILED = Outcome(success=False, error="HTTP 500")
GONE = Outcome(success=False, error="HTTP 410 Gone: the receiver asked to stop", gone=True, retryable=False)
REAUTH = Outcome(success=False, error="HTTP 401: token revoked", needs_reauth=True, retryable=False)


@pytest.fixture(autouse=True)
def database(db):
    return db


@pytest.fixture
def runtime() -> Runtime:
    """A process's runtime as health sees it: settings and the memory of successes written.
    Health sends nothing and opens nothing, so there is no session, Redis or secret box."""
    return Runtime(settings=Settings(disable_after_seconds=DISABLE_AFTER), session=None, redis=None, box=None)


@pytest.fixture
async def workspace() -> Workspace:
    return await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Health")


async def integration(workspace: Workspace, **values) -> Integration:
    return await Integration.create(workspace=workspace, type="webhook", name="hook", **values)


async def fresh(item: Integration) -> Integration:
    return await Integration.get(id=item.id)


def delivery(item: Integration, status: DeliveryStatus = DeliveryStatus.RETRYING, *,
             event_type: str = "session.completed", attachment: FormIntegration | None = None) -> Delivery:
    """The delivery just attempted, as the sender holds it after recording the attempt."""
    return Delivery(id=f"del_{random.getrandbits(48):x}", workspace_id=item.workspace_id, event_id="evt_1",
                    integration_id=item.id, form_id=attachment.form_id if attachment else None,
                    attachment_id=attachment.id if attachment else None, event_type=event_type, status=status,
                    attempt_count=3, response_code=500, last_error="HTTP 500")


async def test_a_success_makes_a_failing_integration_active_again(workspace, runtime):
    item = await integration(workspace, status=IntegrationStatus.FAILING,
                             failing_since=datetime.now(UTC) - timedelta(minutes=5))
    before = datetime.now(UTC)

    assert await health.after_attempt(item, delivery(item, DeliveryStatus.SUCCEEDED), OK, runtime) == []

    row = await fresh(item)
    assert row.status == IntegrationStatus.ACTIVE
    assert row.failing_since is None
    assert row.last_success_at >= before


async def test_last_success_is_written_at_most_once_a_minute(workspace, runtime):
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    item = await integration(workspace, last_success_at=long_ago)
    # A burst: every send loaded the integration before the first success was recorded.
    loaded = [await fresh(item) for _ in range(3)]

    await health.after_attempt(loaded[0], delivery(item, DeliveryStatus.SUCCEEDED), OK, runtime)
    first = (await fresh(item)).last_success_at
    assert first > long_ago
    for stale in loaded[1:]:
        await health.after_attempt(stale, delivery(item, DeliveryStatus.SUCCEEDED), OK, runtime)
    assert (await fresh(item)).last_success_at == first, "a success was written again within the minute"

    # Another process that never wrote one still sees the recent success in the row itself.
    other_process = Runtime(settings=runtime.settings, session=None, redis=None, box=None)
    await health.after_attempt(await fresh(item), delivery(item, DeliveryStatus.SUCCEEDED), OK, other_process)
    assert (await fresh(item)).last_success_at == first

    # More than a minute later the next success is written.
    a_minute_ago = datetime.now(UTC) - timedelta(seconds=61)
    await Integration.filter(id=item.id).update(last_success_at=a_minute_ago)
    runtime.success_written[item.id] = a_minute_ago
    await health.after_attempt(await fresh(item), delivery(item, DeliveryStatus.SUCCEEDED), OK, runtime)
    assert (await fresh(item)).last_success_at > a_minute_ago + timedelta(seconds=60)


async def test_a_failure_marks_the_integration_failing_since_its_first_failure(workspace, runtime):
    item = await integration(workspace)
    before = datetime.now(UTC)

    assert await health.after_attempt(item, delivery(item), FAILED, runtime) == []
    row = await fresh(item)
    assert row.status == IntegrationStatus.FAILING
    assert before <= row.failing_since <= datetime.now(UTC)

    assert await health.after_attempt(row, delivery(item), FAILED, runtime) == []
    again = await fresh(item)
    assert (again.status, again.failing_since) == (IntegrationStatus.FAILING, row.failing_since)


async def test_failing_for_longer_than_allowed_disables_and_publishes_that_once(workspace, runtime):
    item = await integration(workspace, status=IntegrationStatus.FAILING,
                             failing_since=datetime.now(UTC) - timedelta(seconds=DISABLE_AFTER + 5))

    # Two workers see the same failure: only the one that made the transition publishes.
    first = await health.after_attempt(item, delivery(item), FAILED, runtime)
    second = await health.after_attempt(item, delivery(item), FAILED, runtime)

    assert second == []
    assert [(e.workspace_id, e.type, e.exclude_integration_id, e.form_id) for e in first] == [
        (workspace.id, "integration.disabled", item.id, None)]
    assert first[0].payload == {"integration": {"id": item.id, "name": "hook", "type": "webhook"},
                                "reason": f"no successful delivery for {DISABLE_AFTER} s"}
    assert (await fresh(item)).status == IntegrationStatus.DISABLED


async def test_failing_for_less_than_allowed_stays_failing(workspace, runtime):
    item = await integration(workspace, status=IntegrationStatus.FAILING,
                             failing_since=datetime.now(UTC) - timedelta(seconds=DISABLE_AFTER - 60))
    assert await health.after_attempt(item, delivery(item), FAILED, runtime) == []
    assert (await fresh(item)).status == IntegrationStatus.FAILING


async def test_410_gone_disables_at_once(workspace, runtime):
    item = await integration(workspace)
    gone = delivery(item, DeliveryStatus.FAILED)

    events = await health.after_attempt(item, gone, GONE, runtime)

    assert [(e.type, e.payload["reason"]) for e in events] == [
        ("integration.disabled", f"the receiver answered 410 Gone ({gone.id})")]
    assert (await fresh(item)).status == IntegrationStatus.DISABLED
    assert await health.after_attempt(item, delivery(item, DeliveryStatus.FAILED), GONE, runtime) == []


async def test_needs_reauth_holds_the_integration_without_publishing(workspace, runtime):
    item = await integration(workspace)
    assert await health.after_attempt(item, delivery(item, DeliveryStatus.HELD), REAUTH, runtime) == []
    row = await fresh(item)
    assert (row.status, row.failing_since) == (IntegrationStatus.NEEDS_REAUTH, None)


async def attached(workspace: Workspace, item: Integration, *, notify: bool) -> FormIntegration:
    form = await Form.create(workspace=workspace, slug=f"form-{random.getrandbits(32):x}", name="Contact")
    return await FormIntegration.create(form=form, integration=item, notify_on_failure=notify)


async def test_a_final_failure_notifies_when_the_attachment_asks_for_it(workspace, runtime):
    item = await integration(workspace)
    attachment = await attached(workspace, item, notify=True)
    failed = delivery(item, DeliveryStatus.FAILED, attachment=attachment)

    events = await health.after_attempt(item, failed, FAILED, runtime)

    assert [(e.workspace_id, e.type, e.form_id, e.exclude_integration_id) for e in events] == [
        (workspace.id, "integration.delivery_failed", attachment.form_id, item.id)]
    assert events[0].payload == {
        "integration": {"id": item.id, "name": "hook", "type": "webhook"},
        "delivery": {"id": failed.id, "event": "session.completed", "attempts": 3, "error": "HTTP 500",
                     "responseCode": 500},
        "formSlug": None,
    }


async def test_no_failure_notice_before_the_last_attempt_or_when_not_asked_for(workspace, runtime):
    item = await integration(workspace)
    notifying = await attached(workspace, item, notify=True)
    silent = await attached(workspace, await integration(workspace), notify=False)

    assert await health.after_attempt(item, delivery(item, attachment=notifying), FAILED, runtime) == []
    assert await health.after_attempt(item, delivery(item, DeliveryStatus.FAILED, attachment=silent),
                                      FAILED, runtime) == []
    assert await health.after_attempt(item, delivery(item, DeliveryStatus.FAILED), FAILED, runtime) == []


@pytest.mark.parametrize("event_type", ["integration.delivery_failed", "integration.disabled"])
async def test_a_failed_system_event_never_notifies(workspace, runtime, event_type):
    """Two failing integrations notifying each other about their notifications would never stop."""
    item = await integration(workspace)
    attachment = await attached(workspace, item, notify=True)
    failed = delivery(item, DeliveryStatus.FAILED, event_type=event_type, attachment=attachment)
    assert await health.after_attempt(item, failed, FAILED, runtime) == []
    assert (await fresh(item)).status == IntegrationStatus.FAILING
