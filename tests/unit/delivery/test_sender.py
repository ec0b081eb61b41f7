"""What the sender decides after an attempt, before anything is written: the delivery's new status,
when it is tried again, and the follow-up job. Decided in memory, so tested without a database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.config import Settings
from app.core.http import HttpExchange, OutgoingRequest, Recorded
from app.delivery import sender
from app.delivery.queue import QueuedSend
from app.delivery.runtime import Runtime
from app.integrations.base import Outcome, default_outcome
from app.models import Delivery, DeliveryAttempt, DeliveryStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://hooks.example.com/in"
SCHEDULE = (5.0, 300.0)


@pytest.fixture(autouse=True)
def models(orm_models):
    return orm_models


@pytest.fixture
def runtime() -> Runtime:
    """What the decision reads of the runtime: the retry schedule and the random source for jitter."""
    return Runtime(settings=Settings(retry_schedule="5,300", retry_jitter=0), session=None, redis=None, box=None,
                   rng=random.Random(1))


def attempted(outcome: Outcome, status: int | None = None, headers: dict | None = None, *,
              attempts_before: int = 0, body: bytes = b"", error: str | None = None) -> sender._Sent:
    """A delivery just sent once more, with what the exchange recorded (`status` None: no answer)."""
    delivery = Delivery(id="del_1", workspace_id="ws_1", event_id="evt_1", integration_id="int_1",
                        event_type="session.completed", status=DeliveryStatus.SENDING,
                        attempt_count=attempts_before, locked_until=NOW + timedelta(seconds=90))
    exchange = HttpExchange(session=None, allowed_networks=(), timeout=10)
    exchange.records.append(Recorded(OutgoingRequest("POST", URL, {"content-type": "application/json"}, b"{}"),
                                     status=status, headers=headers or {}, body=body, duration_ms=42, error=error))
    return sender._Sent(delivery, exchange, outcome)


def decide(sent: sender._Sent, runtime: Runtime, trigger: str = "automatic") -> tuple[DeliveryAttempt,
                                                                                        QueuedSend | None]:
    return sender._apply(sent, trigger, runtime, NOW)


def test_success_records_the_delivery_as_delivered(runtime):
    sent = attempted(default_outcome(200), 200, {"x-request-id": "r1"}, body=b"thanks")
    attempt, follow_up = decide(sent, runtime)
    delivery = sent.delivery

    assert (delivery.status, delivery.delivered_at, delivery.next_attempt_at) == (DeliveryStatus.SUCCEEDED, NOW, None)
    assert (delivery.attempt_count, delivery.locked_until, delivery.last_error) == (1, None, None)
    assert (delivery.response_code, delivery.duration_ms) == (200, 42)
    assert delivery.response == {"status": 200, "headers": {"x-request-id": "r1"}, "body": "thanks",
                                 "truncated": False}
    assert (attempt.number, attempt.trigger, attempt.request_url, attempt.response_code, attempt.response_body,
            attempt.error, attempt.created_at) == (1, "automatic", URL, 200, "thanks", None, NOW)
    assert follow_up is None


def test_a_retryable_failure_is_retried_on_the_schedule(runtime):
    sent = attempted(default_outcome(500), 500)
    attempt, follow_up = decide(sent, runtime)

    assert sent.delivery.status == DeliveryStatus.RETRYING
    assert sent.delivery.next_attempt_at == NOW + timedelta(seconds=5)
    assert sent.delivery.delivered_at is None
    assert (attempt.number, attempt.error, sent.delivery.last_error) == (1, "HTTP 500", "HTTP 500")
    assert follow_up == QueuedSend("del_1", 2, "automatic", NOW + timedelta(seconds=5))

    # The second failure waits the schedule's second delay.
    sent = attempted(default_outcome(500), 500, attempts_before=1)
    _, follow_up = decide(sent, runtime)
    assert sent.delivery.next_attempt_at == NOW + timedelta(seconds=300)
    assert follow_up == QueuedSend("del_1", 3, "automatic", NOW + timedelta(seconds=300))


def test_a_failure_without_an_answer_is_retried_and_records_the_error(runtime):
    error = "connection failed: Cannot connect to host hooks.example.com:443"
    sent = attempted(Outcome(success=False, error=error), None, error=error)
    attempt, follow_up = decide(sent, runtime)

    assert (sent.delivery.status, sent.delivery.response_code, sent.delivery.response) == (
        DeliveryStatus.RETRYING, None, None)
    assert (attempt.response_code, attempt.response_headers, attempt.response_body, attempt.error) == (
        None, None, None, error)
    assert follow_up is not None and follow_up.attempt == 2


def test_jitter_spreads_retries_around_the_schedule():
    settings = Settings(retry_schedule="5,300", retry_jitter=0.2)
    runtime = Runtime(settings=settings, session=None, redis=None, box=None, rng=random.Random(7))
    delays = set()
    for _ in range(20):
        sent = attempted(default_outcome(503), 503)
        decide(sent, runtime)
        delays.add((sent.delivery.next_attempt_at - NOW).total_seconds())
    assert all(4 <= delay <= 6 for delay in delays) and len(delays) > 10


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retry_after_is_honoured_for_throttling_and_gateway_answers(runtime, status):
    sent = attempted(default_outcome(status, {"Retry-After": "120"}), status, {"Retry-After": "120"})
    _, follow_up = decide(sent, runtime)
    assert sent.delivery.next_attempt_at == NOW + timedelta(seconds=120)
    assert follow_up.run_at == NOW + timedelta(seconds=120)


@pytest.mark.parametrize("status", [500, 400, 404])
def test_retry_after_on_other_answers_is_ignored(runtime, status):
    # Even when a plugin reports it: the status decides whether the header counts.
    sent = attempted(Outcome(success=False, error=f"HTTP {status}", retry_after=120), status,
                     {"Retry-After": "120"})
    decide(sent, runtime)
    assert sent.delivery.next_attempt_at == NOW + timedelta(seconds=5)


@pytest.mark.parametrize(("asked", "waited"), [(0, 1), (0.2, 1), (1, 1), (3600, 3600), (86400, 3600)])
def test_retry_after_is_clamped_between_a_second_and_an_hour(runtime, asked, waited):
    sent = attempted(Outcome(success=False, error="HTTP 429", retry_after=asked), 429)
    decide(sent, runtime)
    assert sent.delivery.next_attempt_at == NOW + timedelta(seconds=waited)


def test_a_plugin_retry_after_without_an_http_answer_is_honoured(runtime):
    sent = attempted(Outcome(success=False, error="rate limited", retry_after=30), None)
    decide(sent, runtime)
    assert sent.delivery.next_attempt_at == NOW + timedelta(seconds=30)


def test_when_the_schedule_is_exhausted_the_delivery_fails(runtime):
    sent = attempted(default_outcome(500), 500, attempts_before=len(SCHEDULE))
    attempt, follow_up = decide(sent, runtime)
    assert (sent.delivery.status, sent.delivery.next_attempt_at, follow_up) == (DeliveryStatus.FAILED, None, None)
    assert attempt.number == len(SCHEDULE) + 1

    # Retry-After does not add attempts beyond the schedule.
    sent = attempted(default_outcome(429, {"Retry-After": "10"}), 429, attempts_before=len(SCHEDULE))
    _, follow_up = decide(sent, runtime)
    assert (sent.delivery.status, follow_up) == (DeliveryStatus.FAILED, None)


def test_410_gone_fails_at_once_without_retry(runtime):
    sent = attempted(default_outcome(410), 410, body=b"gone")
    attempt, follow_up = decide(sent, runtime)
    assert (sent.delivery.status, sent.delivery.next_attempt_at, follow_up) == (DeliveryStatus.FAILED, None, None)
    assert attempt.error == "HTTP 410 Gone: the receiver asked to stop"


def test_a_failure_the_plugin_calls_final_is_not_retried(runtime):
    sent = attempted(Outcome(success=False, error="channel_not_found", retryable=False), 404)
    _, follow_up = decide(sent, runtime)
    assert (sent.delivery.status, follow_up) == (DeliveryStatus.FAILED, None)


def test_needs_reauth_holds_the_delivery(runtime):
    sent = attempted(Outcome(success=False, error="HTTP 401: token revoked", needs_reauth=True, retryable=False),
                     401)
    _, follow_up = decide(sent, runtime)
    assert (sent.delivery.status, sent.delivery.next_attempt_at, follow_up) == (DeliveryStatus.HELD, None, None)
    assert sent.delivery.last_error == "HTTP 401: token revoked"


@pytest.mark.parametrize("status", [500, 503])
def test_a_test_send_never_retries(runtime, status):
    sent = attempted(default_outcome(status, {"Retry-After": "5"}), status)
    attempt, follow_up = decide(sent, runtime, trigger="test")
    assert (sent.delivery.status, sent.delivery.next_attempt_at, follow_up) == (DeliveryStatus.FAILED, None, None)
    assert attempt.trigger == "test"


def test_a_manual_retry_counts_on_from_the_attempts_made(runtime):
    sent = attempted(default_outcome(500), 500, attempts_before=1)
    attempt, follow_up = decide(sent, runtime, trigger="manual")
    assert (attempt.number, attempt.trigger) == (2, "manual")
    # Its follow-up is an ordinary automatic retry.
    assert follow_up == QueuedSend("del_1", 3, "automatic", NOW + timedelta(seconds=300))
