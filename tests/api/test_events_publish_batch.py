"""`eventsPublish` against the live server: many events in one call and transaction, each with its own
type, form, payload and idempotency key; per-event errors; one Redis round trip for every job."""

from __future__ import annotations

import math

import pytest
from tortoise.exceptions import IntegrityError

from app.core import tracing
from app.delivery import fanout, updates
from app.delivery.queue import BATCH_SIZE
from app.delivery.unit import unit_of_work
from app.models import Delivery, DeliveryStatus, Event, Workspace
from app.services.events import MAX_BATCH
from tests.api.test_event_catalog import EXAMPLE, SIGNUP, fresh, register
from tests.conftest import GraphQLClient
from tests.tracing import collected_spans, named
from tests.waiting import eventually
from tests.worker.helpers import connect_webhook, settled

PUBLISH_MANY = """mutation($input: EventsPublishInput!) { eventsPublish(input: $input) {
  results { index created event { id type payload form { slug } } deliveries { id integration { id } }
            errors { field message code } }
  errors { field message code } } }"""
PUBLISH_ONE = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  event { id } deliveries { id } created errors { field code } } }"""
FORM_CREATE = """mutation($ws: String!, $slug: String!) { formCreate(input: {workspace: $ws, slug: $slug, name: $slug})
  { form { id } errors { code } } }"""
ATTACH = """mutation($input: FormIntegrationAttachInput!) { formIntegrationAttach(input: $input) {
  formIntegration { id } errors { field code } } }"""
SESSION = """mutation($input: PortalSessionCreateInput!) { portalSessionCreate(input: $input) {
  token errors { field code } } }"""


async def publish_many(gql, workspace: str, events: list[dict]) -> dict:
    return (await gql(PUBLISH_MANY, {"input": {"workspace": workspace, "events": events}}))["eventsPublish"]


def short(errors: list[dict]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in errors]


async def forms(account, *slugs: str) -> None:
    for slug in slugs:
        assert (await account.gql(FORM_CREATE, {"ws": account.slug, "slug": slug}))["formCreate"]["errors"] == []


class PipelineLog:
    """Every Redis pipeline the server's runtime runs: the commands of each, as strings."""

    def __init__(self, redis):
        self.runs: list[list[list[str]]] = []
        self._pipeline = redis.pipeline

    def pipeline(self, *args, **kwargs):
        pipe = self._pipeline(*args, **kwargs)
        execute = pipe.execute

        async def logged(*a, **kw):
            self.runs.append([[part if isinstance(part, bytes) else str(part) for part in command[0]]
                              for command in pipe.command_stack])
            return await execute(*a, **kw)

        pipe.execute = logged
        return pipe

    def queueing(self, delivery_ids: set[str]) -> list[list[list[str]]]:
        """The pipelines that wrote jobs for any of these deliveries."""
        return [run for run in self.runs
                if any(c[0].upper() == "PSETEX" and any(i in c[1] for i in delivery_ids) for c in run)]


async def test_500_events_in_one_call_are_all_delivered_and_queued_in_one_round_trip(server, account, receiver,
                                                                                      monkeypatch):
    await connect_webhook(account, receiver.url("/batch"))
    log = PipelineLog(server.runtime.redis)
    monkeypatch.setattr(server.runtime.redis, "pipeline", log.pipeline)
    events = [{"type": f"order.{'paid' if n % 2 else 'created'}", "payload": {"n": n}} for n in range(MAX_BATCH)]
    done = await publish_many(account.gql, account.slug, events)
    assert done["errors"] == []
    results = done["results"]
    assert [r["index"] for r in results] == list(range(MAX_BATCH))
    assert all(r["created"] and r["errors"] == [] and len(r["deliveries"]) == 1 for r in results)
    assert [r["event"]["payload"]["n"] for r in results] == list(range(MAX_BATCH))
    assert [r["event"]["type"] for r in results[:2]] == ["order.created", "order.paid"]
    ids = {r["deliveries"][0]["id"] for r in results}
    assert len(ids) == MAX_BATCH

    received = await receiver.wait_for("/batch", MAX_BATCH, timeout=90)
    assert {r.headers["webhook-id"] for r in received} == ids
    await eventually(lambda: _succeeded(ids), timeout=30, what="every delivery to be recorded SUCCEEDED")

    # One round trip queued every job and announced every PENDING: the jobs batch across events.
    queued = log.queueing(ids)
    assert len(queued) == 1, f"{len(queued)} pipelines queued the batch's jobs"
    commands = [c[0].upper() for c in queued[0]]
    # Every PENDING update, a hundred to a message.
    assert commands.count("PUBLISH") == math.ceil(MAX_BATCH / updates.PER_MESSAGE)
    announced = [u for c in queued[0] if c[0].upper() == "PUBLISH" for u in updates.decode_message(c[2])]
    assert sorted(u.delivery.id for u in announced) == sorted(ids)
    assert {u.delivery.status for u in announced} == {"PENDING"}
    assert commands.count("ZADD") == math.ceil(MAX_BATCH / BATCH_SIZE)


async def _succeeded(ids: set[str]) -> bool:
    return await Delivery.filter(id__in=list(ids), status=DeliveryStatus.SUCCEEDED).count() == len(ids)


async def test_a_refused_event_answers_its_errors_by_index_and_the_others_publish(account, receiver):
    await forms(account, "contact")
    hook, _ = await connect_webhook(account, receiver.url("/mixed"))
    events = [
        {"type": "order.paid", "payload": {"n": 0}},
        {"type": "Not A Type", "payload": {"n": 1}},
        {"type": "order.paid", "payload": {"n": 2}, "formSlug": "no-such-form"},
        {"type": "order.paid", "payload": {"blob": "x" * (256 * 1024)}},
        {"type": "order.paid", "payload": {"n": 4}, "formSlug": "contact", "idempotencyKey": ""},
        {"type": "order.paid", "payload": {"n": 5}, "formSlug": "contact"},
    ]
    done = await publish_many(account.gql, account.slug, events)
    results = done["results"]
    assert [r["created"] for r in results] == [True, False, False, False, False, True]
    assert results[1]["event"] is None and results[1]["deliveries"] == []
    assert short(results[1]["errors"]) == [("events.1.type", "INVALID")]
    assert short(results[2]["errors"]) == [("events.2.formSlug", "NOT_FOUND")]
    assert short(results[3]["errors"]) == [("events.3.payload", "TOO_LONG")]
    assert short(results[4]["errors"]) == [("events.4.idempotencyKey", "INVALID")]
    # The call's errors: every refused event's, in order.
    assert short(done["errors"]) == [("events.1.type", "INVALID"), ("events.2.formSlug", "NOT_FOUND"),
                                     ("events.3.payload", "TOO_LONG"), ("events.4.idempotencyKey", "INVALID")]
    assert results[5]["event"]["form"] == {"slug": "contact"}
    assert [d["integration"]["id"] for d in results[5]["deliveries"]] == [hook]
    stored = await Event.filter(workspace__slug=account.slug).order_by("id").values_list("payload", flat=True)
    assert stored == [{"n": 0}, {"n": 5}]
    for r in (results[0], results[5]):
        assert (await settled(r["deliveries"][0]["id"])).status == DeliveryStatus.SUCCEEDED


async def test_recipients_are_matched_per_event_by_type_form_and_conditions(account, receiver):
    await forms(account, "contact", "survey")
    everyone, _ = await connect_webhook(account, receiver.url("/all"), events=["order.*", "form.*"])
    scoped, _ = await connect_webhook(account, receiver.url("/scoped"), events=["*"])
    attached = await account.gql(ATTACH, {"input": {"workspace": account.slug, "formSlug": "contact",
                                                    "integrationId": scoped, "events": ["form.*"],
                                                    "logic": {"all": [{"field": "score", "op": "gte", "value": 4}]}}})
    assert attached["formIntegrationAttach"]["errors"] == []
    events = [
        {"type": "form.submitted", "formSlug": "contact", "payload": {"score": 5}},  # both
        {"type": "form.submitted", "formSlug": "contact", "payload": {"score": 1}},  # the condition says no
        {"type": "form.submitted", "formSlug": "survey", "payload": {"score": 5}},  # not attached to survey
        {"type": "order.paid", "formSlug": "contact", "payload": {"score": 5}},  # the attachment's filter says no
        {"type": "session.completed", "payload": {"score": 5}},  # no form; `everyone`'s filter says no
    ]
    done = await publish_many(account.gql, account.slug, events)
    assert done["errors"] == []
    heard = [sorted(d["integration"]["id"] for d in r["deliveries"]) for r in done["results"]]
    assert heard == [sorted([everyone, scoped]), [everyone], [everyone], [everyone], []]


async def test_idempotency_keys_across_calls_and_within_one(account):
    first = await publish_many(account.gql, account.slug, [
        {"type": "order.paid", "payload": {"n": 0}, "idempotencyKey": "k1"},
        {"type": "order.paid", "payload": {"n": 1}, "idempotencyKey": "k2"},
        {"type": "order.paid", "payload": {"n": 2}, "idempotencyKey": "k1"},  # the first's key: its event
        {"type": "order.paid", "payload": {"n": 3}},
    ])
    assert first["errors"] == []
    r = first["results"]
    assert [x["created"] for x in r] == [True, True, False, True]
    assert r[2]["event"] == r[0]["event"] and r[2]["deliveries"] == r[0]["deliveries"]

    single = (await account.gql(PUBLISH_ONE, {"input": {"workspace": account.slug, "type": "order.paid",
                                                        "payload": {}, "idempotencyKey": "k3"}}))["eventPublish"]
    again = await publish_many(account.gql, account.slug, [
        {"type": "order.paid", "payload": {"n": 9}, "idempotencyKey": "k2"},
        {"type": "order.paid", "payload": {"n": 9}, "idempotencyKey": "k1"},
        {"type": "order.paid", "payload": {"n": 9}, "idempotencyKey": "k3"},  # published by eventPublish
        {"type": "order.paid", "payload": {"n": 9}, "idempotencyKey": "k4"},
    ])
    a = again["results"]
    assert [x["created"] for x in a] == [False, False, False, True]
    assert a[0]["event"] == r[1]["event"] and a[1]["event"] == r[0]["event"]
    assert a[0]["deliveries"] == r[1]["deliveries"]
    assert a[2]["event"]["id"] == single["event"]["id"]
    # And eventPublish answers an event eventsPublish made.
    repeat = (await account.gql(PUBLISH_ONE, {"input": {"workspace": account.slug, "type": "order.paid",
                                                        "payload": {}, "idempotencyKey": "k4"}}))["eventPublish"]
    assert repeat["created"] is False and repeat["event"]["id"] == a[3]["event"]["id"]
    keys = await Event.filter(workspace__slug=account.slug).values_list("idempotency_key", flat=True)
    assert sorted(keys, key=str) == sorted(["k1", "k2", "k3", "k4", None], key=str)


@pytest.mark.parametrize("transaction", [True, False], ids=["in-a-transaction", "as-the-mutations-run"])
async def test_a_key_taken_by_a_concurrent_publish_answers_that_event(server, account, monkeypatch, transaction):
    """The race the bulk insert can lose: a key unseen when checked, taken before the insert. The batch
    falls back to a savepoint (or, with no transaction around it, a transaction) per event: the loser
    answers the winner's event, the others publish."""
    workspace = await Workspace.get(slug=account.slug)
    async with unit_of_work(server.runtime) as unit:
        winner = await fanout.publish_event(unit, workspace.id, "order.paid", {"n": "winner"}, idempotency_key="race")
    looked = []
    real = fanout._existing_many

    async def unseen_at_first(workspace_id, keys):
        looked.append(set(keys))
        return {} if len(looked) == 1 else await real(workspace_id, keys)

    monkeypatch.setattr(fanout, "_existing_many", unseen_at_first)
    async with unit_of_work(server.runtime, transaction=transaction) as unit:
        results = await fanout.publish_events(unit, workspace.id, [
            fanout.EventInput("order.paid", {"n": 0}),
            fanout.EventInput("order.paid", {"n": 1}, idempotency_key="race"),
            fanout.EventInput("order.paid", {"n": 2}, idempotency_key="race"),
            fanout.EventInput("order.paid", {"n": 3}, idempotency_key="fresh"),
        ])
    assert [r.created for r in results] == [True, False, False, True]
    assert results[1].event.id == results[2].event.id == winner.event.id
    assert looked[0] == {"race", "fresh"}
    stored = await Event.filter(workspace_id=workspace.id).order_by("id").values_list("payload", flat=True)
    assert stored == [{"n": "winner"}, {"n": 0}, {"n": 3}]


@pytest.mark.parametrize("transaction", [True, False], ids=["in-a-transaction", "as-the-mutations-run"])
async def test_a_publish_whose_deliveries_cannot_all_be_written_leaves_nothing(server, account, receiver,
                                                                               monkeypatch, transaction):
    """`eventPublish` runs without a transaction around it: the event and its deliveries still go in
    whole or not at all. Here the last delivery names an integration that does not exist."""
    for n in range(3):
        await connect_webhook(account, receiver.url(f"/whole-{n}"))
    workspace = await Workspace.get(slug=account.slug)
    real = fanout.new_delivery
    made = []

    def third_is_broken(event, recipient, now):
        made.append(delivery := real(event, recipient, now))
        if len(made) == 3:
            delivery.integration_id = "int_00000000000000000000000000"
        return delivery

    monkeypatch.setattr(fanout, "new_delivery", third_is_broken)
    with pytest.raises(IntegrityError):
        async with unit_of_work(server.runtime, transaction=transaction) as unit:
            await fanout.publish_event(unit, workspace.id, "order.paid", {"n": "whole"})
    assert await Event.filter(workspace_id=workspace.id).count() == 0
    assert await Delivery.filter(workspace_id=workspace.id).count() == 0
    monkeypatch.undo()
    async with unit_of_work(server.runtime, transaction=transaction) as unit:
        published = await fanout.publish_event(unit, workspace.id, "order.paid", {"n": "whole"})
    assert len(published.deliveries) == 3
    assert await Delivery.filter(event_id=published.event.id).count() == 3


async def test_more_than_the_maximum_is_refused_as_a_whole(account):
    events = [{"type": "order.paid", "payload": {"n": n}} for n in range(MAX_BATCH + 1)]
    done = await publish_many(account.gql, account.slug, events)
    assert done["results"] == [] and short(done["errors"]) == [("events", "TOO_LONG")]
    assert await Event.filter(workspace__slug=account.slug).count() == 0
    empty = await publish_many(account.gql, account.slug, [])
    assert empty == {"results": [], "errors": []}
    code = await account.gql.error_code(PUBLISH_MANY, {"input": {"workspace": "no-such-workspace", "events": []}})
    assert code == "NOT_FOUND"


async def test_strict_catalog_types_are_checked_per_event(account):
    name = fresh()
    assert (await register(account.gql, account.slug, name, schema=SIGNUP, validation="STRICT"))["errors"] == []
    lenient = fresh()
    assert (await register(account.gql, account.slug, lenient, schema=SIGNUP, validation="LENIENT"))["errors"] == []
    done = await publish_many(account.gql, account.slug, [
        {"type": name, "payload": EXAMPLE},
        {"type": name, "payload": {**EXAMPLE, "plan": "gold"}, "idempotencyKey": "strict"},
        {"type": name, "payload": EXAMPLE, "idempotencyKey": "strict"},  # the refused one did not take the key
        {"type": lenient, "payload": {**EXAMPLE, "plan": "gold"}},
    ])
    r = done["results"]
    assert [x["created"] for x in r] == [True, False, True, True]
    assert short(r[1]["errors"]) == [("events.1.payload/plan", "INVALID_PAYLOAD")]
    assert short(done["errors"]) == [("events.1.payload/plan", "INVALID_PAYLOAD")]
    kept = await Event.get(id=r[3]["event"]["id"])
    assert [e["pointer"] for e in kept.schema_errors] == ["/plan"]


async def test_a_portal_session_publishes_to_its_forms_only(account, receiver):
    await forms(account, "contact", "survey")
    await connect_webhook(account, receiver.url("/portal"))

    async def session(**fields) -> GraphQLClient:
        made = (await account.gql(SESSION, {"input": {"workspace": account.slug, **fields}}))["portalSessionCreate"]
        assert made["errors"] == []
        return GraphQLClient(account.gql.http, made["token"])

    limited = await session(formSlugs=["contact"], abilities=["events:publish", "deliveries:read"])
    done = await publish_many(limited, account.slug, [
        {"type": "form.submitted", "formSlug": "contact", "payload": {"n": 0}},
        {"type": "form.submitted", "formSlug": "survey", "payload": {"n": 1}},
        {"type": "form.submitted", "payload": {"n": 2}},
        {"type": "form.submitted", "formSlug": "no-such-form", "payload": {"n": 3}},
    ])
    assert [x["created"] for x in done["results"]] == [True, False, False, False]
    # A form outside the session reads like one that does not exist.
    assert short(done["errors"]) == [("events.1.formSlug", "NOT_FOUND"), ("events.2.formSlug", "REQUIRED"),
                                     ("events.3.formSlug", "NOT_FOUND")]
    assert done["errors"][0]["message"] == "no form 'survey' in this workspace"
    assert done["errors"][2]["message"] == "no form 'no-such-form' in this workspace"

    everywhere = await session(abilities=["events:publish"])
    assert (await publish_many(everywhere, account.slug, [
        {"type": "form.submitted", "formSlug": "survey", "payload": {}}, {"type": "x.y", "payload": {}}]))[
        "errors"] == []
    cannot = await session(formSlugs=["contact"], abilities=["deliveries:read"])
    code = await cannot.error_code(PUBLISH_MANY, {"input": {"workspace": account.slug, "events": [
        {"type": "form.submitted", "formSlug": "contact", "payload": {}}]}})
    assert code == "FORBIDDEN"


@pytest.mark.parametrize("bad", [{"type": "order.paid"}, {"payload": {}}])
async def test_an_event_missing_a_required_field_is_a_graphql_error(account, bad):
    body = await account.gql.raw(PUBLISH_MANY, {"input": {"workspace": account.slug, "events": [bad]}})
    assert body.get("errors")


async def test_one_publish_span_for_the_call_and_its_jobs_join_its_trace(account, receiver):
    pytest.importorskip("opentelemetry.sdk")
    await connect_webhook(account, receiver.url("/traced-batch"))
    with collected_spans() as spans:
        done = await publish_many(account.gql, account.slug, [
            {"type": "order.paid", "payload": {"n": 0}}, {"type": "Bad", "payload": {}},
            {"type": "order.paid", "payload": {"n": 2}}])
        assert [r["created"] for r in done["results"]] == [True, False, True]
        await receiver.wait_for("/traced-batch", 2)
        for r in (done["results"][0], done["results"][2]):
            await settled(r["deliveries"][0]["id"])
        [span] = named(spans, tracing.PUBLISH_SPAN, **{"hookyard.workspace": account.slug})
        assert span.attributes["hookyard.event.count"] == 3
        assert span.attributes["hookyard.event.created_count"] == 2
        assert span.attributes["hookyard.event.refused_count"] == 1
        assert span.attributes["hookyard.delivery.count"] == 2
        jobs = await eventually(lambda: [s for s in named(spans, tracing.JOB_SPAN)
                                         if s.context.trace_id == span.context.trace_id], what="the job span")
        assert [j.attributes["hookyard.delivery.count"] for j in jobs] == [2]  # one job for both events
        assert jobs[0].attributes["hookyard.job.function"] == "send_deliveries"
