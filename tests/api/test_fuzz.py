"""Schemathesis (GraphQL mode) fuzzes every query and mutation of the live /graphql with an owner's token.

Whatever it sends, the server must answer like an API: never a 5xx, never a masked "Internal server
error" (an exception no resolver expected), never a traceback. Schemathesis calls with `requests`, which
blocks, so generation and calls run in a worker thread while the test server serves on the event loop.

* The JSON and DateTime scalars get strategies of their own (`schemathesis.graphql.scalar`), so the
  operations taking them (`integrationConnect`, `eventPublish`, `deliveriesRecover`, ...) are fuzzed
  too: any JSON value, objects leaning towards the keys the server reads and a loopback receiver's
  URLs; ISO date-times from year 1 to 9999, naive and with extreme offsets, and near misses.
* String arguments that name things are often swapped for ones that exist (the workspace, its form,
  integrations, deliveries, members), so cases get past NOT_FOUND into the use-cases; any string may
  be swapped for an edge case (empty, NUL, longer than the column it is compared with).
* Operations that destroy the fixtures (delete, disconnect, detach, revoke, remove, plan changes) run last.

HOOKYARD_FUZZ_EXAMPLES (default 25) bounds the examples per operation and HOOKYARD_FUZZ_SECONDS
(default 36) the time for all of them, shared out evenly, so the test stays under a minute.

`test_what_the_fuzzer_found_stays_fixed` replays, deterministically, each input the fuzzer found that
once answered "Internal server error".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone

import graphql
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from app.services.tokens import ABILITIES, OPERATOR_ABILITY
from tests.conftest import make_account
from tests.worker.helpers import publish, settled

EXAMPLES = int(os.environ.get("HOOKYARD_FUZZ_EXAMPLES", "25"))
TIME_BUDGET = float(os.environ.get("HOOKYARD_FUZZ_SECONDS", "36"))
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', '.py", line ')
DESTRUCTIVE = ("Delete", "Disconnect", "Detach", "Revoke", "Remove", "PlanSet")

# Keys the integration kinds, the logic validator and the fan-out read.
JSON_KEYS = ("url", "secret", "signingSecret", "headers", "verify_ssl", "verifySsl", "title", "spreadsheet_id",
             "sheet", "pipeline_id", "op", "field", "value", "all", "any", "not", "conditions", "data", "type")
GRAPHQL_NAME = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,12}\Z")
# Past the width of every column a lookup compares with: ids 32, slugs 64, event types 100, names 200.
EDGE_STRINGS = ("", " ", "\x00", "a\x00b", "int_" + "0" * 40, "x" * 65, "é" * 101, "y" * 201, "z" * 2100,
                "\U0001f600" * 40, "QUFB" * 20)  # the last: base64 of 60 'A's, a cursor too long for an id


def _field(name: str, value: graphql.ValueNode) -> graphql.ObjectFieldNode:
    return graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)


def json_values(urls: list[str]) -> st.SearchStrategy[graphql.ValueNode]:
    """Any JSON value as a GraphQL literal: null, booleans, small and 64-bit-overflowing numbers, odd
    strings, lists and objects, nested."""
    leaves = st.one_of(
        st.just(graphql.NullValueNode()),
        st.booleans().map(nodes.Boolean),
        st.integers().map(nodes.Int),
        st.integers(min_value=-(2**63), max_value=2**64).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.text(max_size=40).map(nodes.String),
        st.sampled_from(urls).map(nodes.String),
    )
    keys = st.one_of(st.sampled_from(JSON_KEYS), GRAPHQL_NAME)

    def containers(children):
        return st.one_of(
            st.lists(children, max_size=4).map(nodes.List),
            st.dictionaries(keys, children, max_size=5).map(
                lambda d: nodes.Object([_field(k, v) for k, v in d.items()])),
        )

    return st.recursive(leaves, containers, max_leaves=12)


OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
                           timezone(timedelta(hours=5, minutes=30))])


def datetimes() -> st.SearchStrategy[graphql.ValueNode]:
    """ISO 8601 date-times, naive and aware, from year 1 to 9999, and strings that only look like them."""
    aware = st.datetimes(timezones=OFFSETS).map(lambda d: d.isoformat())
    naive = st.datetimes().map(lambda d: d.isoformat())
    odd = st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00",
                           "9999-12-31T23:59:59.999999", "2024-02-30T00:00:00Z", "2024-01-01", "now", "",
                           "2024-01-01T25:00:00Z", "1970-01-01T00:00:00Z"])
    return st.one_of(aware, naive, odd).map(nodes.String)


@dataclass
class Pool:
    """Names and ids that exist, for the fuzzer to use instead of random strings now and then."""

    slug: str
    form_slug: str
    ids: list[str]
    integration_ids: list[str]
    user_ids: list[str]
    names: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        self.names = {
            "workspace": [self.slug], "slug": [self.slug, self.form_slug, "fresh-slug"], "formSlug": [self.form_slug],
            "id": self.ids, "integrationId": self.integration_ids, "userId": self.user_ids,
            "email": [f"member-{self.slug}@example.com", "x@y.z"], "type": ["session.completed", "integration.test"],
            "event": ["session.completed", "form.*"],
        }


class _Steer(graphql.Visitor):
    """Swaps string arguments and input fields for existing names, or for edge cases."""

    def __init__(self, pool: Pool, rnd: random.Random):
        super().__init__()
        self.pool, self.rnd = pool, rnd

    def _swap(self, node, *_args):
        if not isinstance(node.value, graphql.StringValueNode):
            return None
        known = self.pool.names.get(node.name.value)
        if known and self.rnd.random() < 0.6:
            value = self.rnd.choice(known)
        elif self.rnd.random() < 0.2:
            value = self.rnd.choice(EDGE_STRINGS)
        else:
            return None
        return type(node)(name=node.name, value=graphql.StringValueNode(value=value))

    enter_argument = _swap
    enter_object_field = _swap


class OutOfTime(Exception):
    """This operation's share of the time is spent."""


@dataclass
class Finding:
    operation: str
    problem: str
    query: str
    answer: str


def problem_with(response: requests.Response) -> str | None:
    text = response.text
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    if "Internal server error" in text:
        return "masked internal error"
    if any(marker in text for marker in TRACEBACK_MARKERS):
        return "traceback in the answer"
    return None


@dataclass
class Run:
    base_url: str
    pool: Pool
    session: requests.Session
    findings: list[Finding] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    def fuzz(self, operation, seconds: float) -> None:
        label = operation.label
        self.calls[label] = 0
        deadline = time.monotonic() + seconds

        # Generation only (no shrinking): past the deadline the next case raises OutOfTime, which ends it. The
        # first is always sent, however long a slow machine took to generate it: every operation is tried.
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @given(case=operation.as_strategy(), seed=st.integers(0, 2**32))
        def one(case, seed):
            if self.calls[label] and time.monotonic() > deadline:
                raise OutOfTime
            document = graphql.parse(case.body)
            case.body = graphql.print_ast(graphql.visit(document, _Steer(self.pool, random.Random(seed))))
            response = case.call(base_url=self.base_url, session=self.session, timeout=15)
            self.calls[label] += 1
            if problem := problem_with(response):
                self.findings.append(Finding(label, problem, case.body, response.text[:2000]))

        with contextlib.suppress(OutOfTime):
            one()


def run_fuzz(base_url: str, token: str, pool: Pool, budget: float) -> Run:
    """In a worker thread: loads the schema by introspection, then fuzzes each operation in turn."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    schema = schemathesis.graphql.from_url(f"{base_url}/graphql", headers={"Authorization": f"Bearer {token}"})
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: any(word in op.label for word in DESTRUCTIVE))
    run = Run(base_url, pool, session)
    started = time.monotonic()
    with session:
        for i, operation in enumerate(operations):
            left = budget - (time.monotonic() - started)
            run.fuzz(operation, max(left / (len(operations) - i), 0.2))
    return run


CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""


async def _fixtures(account, receiver) -> Pool:
    """A form, two webhooks and a Slack integration on the receiver, an attachment, a delivered event, a member."""
    form = (await account.gql('mutation($ws: String!) { formCreate(input: {workspace: $ws, slug: "contact", '
                              'name: "Contact"}) { form { id } } }', {"ws": account.slug}))["formCreate"]["form"]
    integration_ids = []
    for type_name, path in (("WEBHOOK", "/fuzz"), ("WEBHOOK", "/fuzz2"), ("SLACK", "/services/T0/B0/abcdefghijklmnop")):
        made = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": type_name, "name": "fuzz",
                                                     "config": {"url": receiver.url(path)}}})
        integration_ids.append(made["integrationConnect"]["integration"]["id"])
    attached = await account.gql(
        'mutation($ws: String!, $id: ID!) { formIntegrationAttach(input: {workspace: $ws, formSlug: "contact", '
        "integrationId: $id}) { formIntegration { id } } }", {"ws": account.slug, "id": integration_ids[1]})
    published = await publish(account, "session.completed", {"answer": 1}, formSlug="contact")
    delivery_id = published["deliveries"][0]["id"]
    await settled(delivery_id)
    detail = await account.gql("query($id: ID!) { delivery(id: $id) { attempts { id } event { id } } }",
                               {"id": delivery_id})
    member = await account.gql('mutation($ws: String!, $email: String!) { memberAdd(input: {workspace: $ws, '
                               'email: $email}) { member { user { id } } } }',
                               {"ws": account.slug, "email": f"member-{account.slug}@example.com"})
    member_id = member["memberAdd"]["member"]["user"]["id"]
    workspace_id = (await account.gql("query($s: String!) { workspace(slug: $s) { id } }",
                                      {"s": account.slug}))["workspace"]["id"]
    ids = [workspace_id, account.user_id, member_id, form["id"], delivery_id, *integration_ids,
           attached["formIntegrationAttach"]["formIntegration"]["id"], detail["delivery"]["event"]["id"],
           *[a["id"] for a in detail["delivery"]["attempts"]]]
    return Pool(slug=account.slug, form_slug="contact", ids=ids, integration_ids=integration_ids,
                user_ids=[member_id, account.user_id])


async def test_fuzzing_every_operation_finds_no_server_errors(server, http, receiver):
    schemathesis.graphql.scalar("JSON", json_values([receiver.url("/fuzz"), receiver.url("/services/T0/B0/" + "x" * 24),
                                                      "https://example.com/hook", "http://127.0.0.1:9/h"]))
    schemathesis.graphql.scalar("DateTime", datetimes())
    # An owner whose token has every ability there is, so no operation stops at FORBIDDEN for want of one.
    owner = await make_account(http, abilities=[*ABILITIES, OPERATOR_ABILITY])
    pool = await _fixtures(owner, receiver)

    started = time.monotonic()
    run = await asyncio.to_thread(run_fuzz, server.url, owner.token, pool, TIME_BUDGET)
    elapsed = time.monotonic() - started
    print(f"fuzzed {sum(run.calls.values())} requests over {len(run.calls)} operations in {elapsed:.1f} s")

    first = {f.operation: f for f in reversed(run.findings)}
    report = "\n\n".join(f"{f.operation}: {f.problem}\n{f.query}\n-> {f.answer}" for f in first.values())
    assert not run.findings, f"{len(run.findings)} bad answers; the first per operation:\n{report}"
    # Every query and mutation the schema has was sent, the JSON and DateTime ones included.
    assert {"Query.viewer", "Mutation.integrationConnect", "Mutation.eventPublish", "Mutation.deliveriesRecover",
            "Mutation.apiTokenCreate"} <= set(run.calls), sorted(run.calls)
    assert all(run.calls.values()), run.calls
    # Still serving, and the owner's token still works.
    assert (await http.get("/healthz")).status_code == 200
    assert (await owner.gql("{ viewer { user { id } } }"))["viewer"]["user"]["id"] == owner.user_id


# ---------------------------------------------------------------- what the fuzzer found, replayed

LONG_ID, LONG_SLUG = "int_" + "0" * 40, "y" * 65
LONG_CURSOR = "QUFB" * 20  # base64 of 60 'A's
FOUND = [  # (what it was, document, variables; $ws and $int are filled in, expected code or payload errors)
    ("a user node, then a member's role changed (tortoise self-join renamed the membership table)",
     "query($u: ID!) { node(id: $u) { id } }", {"u": "$member"}, "OK"),
    ("... the role change after it", "mutation($ws: String!, $e: String!) { memberAdd(input: {workspace: $ws, "
     "email: $e, role: ADMIN}) { member { role } errors { code } } }", {"ws": "$ws", "e": "$member_email"}, "OK"),
    ("an id longer than the column", "query($id: ID!) { integration(id: $id) { id } }", {"id": LONG_ID}, "NOT_FOUND"),
    ("... delivery", "query($id: ID!) { delivery(id: $id) { id } }", {"id": LONG_ID}, "NOT_FOUND"),
    ("... form", "mutation($id: ID!) { formUpdate(input: {id: $id, name: \"x\"}) { errors { code } } }",
     {"id": LONG_ID}, "NOT_FOUND"),
    ("... attachment", "mutation($id: ID!) { formIntegrationDetach(input: {id: $id}) { errors { code } } }",
     {"id": LONG_ID}, "NOT_FOUND"),
    ("... token", "mutation($id: ID!) { apiTokenRevoke(input: {id: $id}) { errors { code } } }",
     {"id": LONG_ID}, "NOT_FOUND"),
    ("... member", "mutation($ws: String!, $id: ID!) { memberRemove(input: {workspace: $ws, userId: $id}) "
     "{ errors { code } } }", {"ws": "$ws", "id": LONG_ID}, "errors: NOT_FOUND"),
    ("... integration to attach", "mutation($ws: String!, $id: ID!) { formIntegrationAttach(input: {workspace: $ws, "
     "formSlug: \"contact\", integrationId: $id}) { errors { code } } }", {"ws": "$ws", "id": LONG_ID}, "NOT_FOUND"),
    ("a slug longer than the column", "query($s: String!) { workspace(slug: $s) { id } }", {"s": LONG_SLUG},
     "NOT_FOUND"),
    ("... form slug to attach", "mutation($ws: String!, $s: String!, $id: ID!) { formIntegrationAttach(input: "
     "{workspace: $ws, formSlug: $s, integrationId: $id}) { errors { code } } }",
     {"ws": "$ws", "s": LONG_SLUG, "id": "$int"}, "NOT_FOUND"),
    ("... form slug to publish to", "mutation($ws: String!, $s: String!) { eventPublish(input: {workspace: $ws, "
     "type: \"a.b\", payload: {}, formSlug: $s}) { errors { code } } }", {"ws": "$ws", "s": LONG_SLUG},
     "errors: NOT_FOUND"),
    ("... form slug to read", "query($ws: String!, $s: String!) { workspace(slug: $ws) { form(slug: $s) { id } } }",
     {"ws": "$ws", "s": LONG_SLUG}, "OK"),
    ("filter values longer than their columns", "query($ws: String!, $s: String!, $id: ID!) { workspace(slug: $ws) "
     "{ deliveries(filter: {integrationId: $id, formSlug: $s, event: $s}) { totalCount } } }",
     {"ws": "$ws", "s": "e" * 101, "id": LONG_ID}, "OK"),
    ("a cursor longer than an id", "query($ws: String!, $after: String!) { workspace(slug: $ws) { integrations("
     "after: $after) { totalCount } } }", {"ws": "$ws", "after": LONG_CURSOR}, "BAD_USER_INPUT"),
    ("a member name longer than the column", "mutation($ws: String!, $n: String!) { memberAdd(input: {workspace: "
     "$ws, email: \"long-name@example.com\", name: $n}) { errors { code } } }", {"ws": "$ws", "n": "n" * 201},
     "errors: TOO_LONG"),
    ("an expiry past 9999 in UTC", "mutation { apiTokenCreate(input: {name: \"x\", "
     "expiresAt: \"9999-12-31T23:59:59-12:00\"}) { errors { code } } }", {}, "errors: OUT_OF_RANGE"),
    ("a naive since and an aware until before it", "mutation($id: ID!) { deliveriesRecover(input: {integrationId: "
     "$id, since: \"0284-05-20T06:37:49\", until: \"0047-07-17T20:36:08+05:30\"}) { errors { code } } }",
     {"id": "$int"}, "errors: OUT_OF_RANGE"),
    ("date-times before year 1 in UTC", "mutation($id: ID!) { deliveriesRecover(input: {integrationId: $id, "
     "since: \"0001-01-01T00:00:00+14:00\", until: \"9999-12-31T23:59:59-12:00\"}) { queued errors { code } } }",
     {"id": "$int"}, "OK"),
    ("... as a filter", "query($ws: String!) { workspace(slug: $ws) { deliveries(filter: {from: "
     "\"0001-01-01T00:00:00+14:00\", to: \"9999-12-31T23:59:59-12:00\"}) { totalCount } } }", {"ws": "$ws"}, "OK"),
    ("NUL in a variable (PostgreSQL text cannot hold it)", "query($s: String!) { workspace(slug: $s) { id } }",
     {"s": "a\x00b"}, "BAD_USER_INPUT"),
    ("NUL in a literal", "mutation($ws: String!) { eventPublish(input: {workspace: $ws, type: \"a.b\", "
     "payload: {k: \"\\u0000\"}}) { errors { code } } }", {"ws": "$ws"}, "BAD_USER_INPUT"),
]


async def test_what_the_fuzzer_found_stays_fixed(http, account, receiver):
    """Each input once answered "Internal server error" (on SQLite, PostgreSQL or both)."""
    made = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "found",
                                                 "config": {"url": receiver.url("/found")}}})
    await account.gql('mutation($ws: String!) { formCreate(input: {workspace: $ws, slug: "contact", name: "C"}) '
                      "{ errors { code } } }", {"ws": account.slug})
    email = f"member-{account.slug}@example.com"
    added = await account.gql('mutation($ws: String!, $e: String!) { memberAdd(input: {workspace: $ws, email: $e}) '
                              "{ member { user { id } } } }", {"ws": account.slug, "e": email})
    fill = {"$ws": account.slug, "$int": made["integrationConnect"]["integration"]["id"], "$member_email": email,
            "$member": added["memberAdd"]["member"]["user"]["id"]}
    wrong = []
    for what, document, variables, expected in FOUND:
        body = await account.gql.raw(document, {k: fill.get(v, v) for k, v in variables.items()})
        errors = body.get("errors") or []
        if errors:
            got = (errors[0].get("extensions") or {}).get("code") or errors[0]["message"]
        else:
            payload = next(iter(body["data"].values()))
            codes = [e["code"] for e in (payload or {}).get("errors") or []] if isinstance(payload, dict) else []
            got = f"errors: {', '.join(codes)}" if codes else "OK"
        if got != expected or "Internal server error" in str(body):
            wrong.append(f"{what}: expected {expected}, got {got}: {body}")
    assert not wrong, "\n".join(wrong)
