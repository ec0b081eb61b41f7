"""The event catalog against the live server: registering, changing, deprecating and listing event
types; who may; STRICT and LENIENT schema checks on eventPublish; integrationTest sending an example."""

from __future__ import annotations

import uuid

import orjson

from app.delivery.event_schemas import NOT_ENCODABLE
from app.models import Event, Membership, Role, User
from app.services.tokens import ABILITIES, OPERATOR_ABILITY, create_token
from tests.conftest import GraphQLClient
from tests.worker.helpers import connect_webhook, settled

REGISTER = """mutation($input: EventTypeRegisterInput!) { eventTypeRegister(input: $input) {
  eventType { name registered global description schema example validation deprecated deprecationReason }
  errors { field message code } } }"""
UPDATE = """mutation($input: EventTypeUpdateInput!) { eventTypeUpdate(input: $input) {
  eventType { name description schema example validation } errors { field message code } } }"""
DEPRECATE = """mutation($input: EventTypeDeprecateInput!) { eventTypeDeprecate(input: $input) {
  eventType { name deprecated deprecatedAt deprecationReason } errors { field message code } } }"""
LIST = """query($ws: String) { eventTypes(workspace: $ws) { name system registered global description schema example
  validation deprecated deprecatedAt deprecationReason lastSeenAt } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  event { id payload schemaErrors { pointer message } } deliveries { id } created errors { field message code } } }"""
TEST = """mutation($id: ID!, $event: String) { integrationTest(input: {id: $id, event: $event}) {
  result { success } delivery { id event { type payload } } errors { field message code } } }"""

SIGNUP = {
    "type": "object",
    "required": ["user", "plan"],
    "properties": {
        "user": {"type": "object", "required": ["email"],
                 "properties": {"email": {"type": "string", "minLength": 3}, "name": {"type": "string"}}},
        "plan": {"enum": ["free", "pro"]},
        "seats": {"type": "integer", "minimum": 1},
    },
}
EXAMPLE = {"user": {"email": "ada@example.com", "name": "Ada"}, "plan": "pro", "seats": 3}


def fresh(prefix: str = "signup") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


async def register(gql, workspace: str | None, name: str, **extra) -> dict:
    target = {"global": True} if workspace is None else {"workspace": workspace}
    return (await gql(REGISTER, {"input": {**target, "name": name, **extra}}))["eventTypeRegister"]


async def in_catalog(gql, workspace: str | None, name: str) -> dict | None:
    listed = (await gql(LIST, {"ws": workspace}))["eventTypes"]
    return next((t for t in listed if t["name"] == name), None)


async def token_with(account, abilities) -> GraphQLClient:
    _, plain = await create_token(await User.get(id=account.user_id), name="t", abilities=list(abilities))
    return GraphQLClient(account.gql.http, plain)


async def member_of(account, role: Role) -> GraphQLClient:
    from app.models import Workspace

    user = await User.create(email=f"{role.value}-{uuid.uuid4().hex[:8]}@example.com", name=role.value)
    await Membership.create(workspace=await Workspace.get(slug=account.slug), user=user, role=role)
    _, plain = await create_token(user, name=role.value, abilities=list(ABILITIES))
    return GraphQLClient(account.gql.http, plain)


async def test_register_update_deprecate_and_list(account):
    name = fresh()
    made = await register(account.gql, account.slug, name, description="A person signed up.", schema=SIGNUP,
                          example=EXAMPLE, validation="STRICT")
    assert made["errors"] == []
    assert made["eventType"] == {"name": name, "registered": True, "global": False,
                                 "description": "A person signed up.", "schema": SIGNUP, "example": EXAMPLE,
                                 "validation": "STRICT", "deprecated": False, "deprecationReason": None}
    await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "order.paid", "payload": {"n": 1}}})

    listed = (await account.gql(LIST, {"ws": account.slug}))["eventTypes"]
    names = [t["name"] for t in listed if not t["global"]]  # other tests register global types too
    # Registered and seen types by name, then the system events: nothing the old list had disappears.
    assert names[:2] == sorted([name, "order.paid"]) and names[-2:] == ["integration.delivery_failed",
                                                                       "integration.disabled"]
    seen = next(t for t in listed if t["name"] == "order.paid")
    assert seen["registered"] is False and seen["lastSeenAt"] and seen["schema"] is None
    system = next(t for t in listed if t["name"] == "integration.disabled")
    assert system["system"] and system["description"]

    changed = (await account.gql(UPDATE, {"input": {"workspace": account.slug, "name": name,
                                                    "description": "Someone signed up.", "validation": "LENIENT"}}
                                 ))["eventTypeUpdate"]
    assert changed["errors"] == [] and changed["eventType"]["description"] == "Someone signed up."
    assert changed["eventType"]["validation"] == "LENIENT" and changed["eventType"]["schema"] == SIGNUP

    gone = (await account.gql(DEPRECATE, {"input": {"workspace": account.slug, "name": name,
                                                    "reason": "use account.created"}}))["eventTypeDeprecate"]
    assert gone["errors"] == [] and gone["eventType"]["deprecated"] and gone["eventType"]["deprecatedAt"]
    listed = await in_catalog(account.gql, account.slug, name)
    assert listed["deprecated"] and listed["deprecationReason"] == "use account.created"
    # Deprecated types still check and deliver.
    published = (await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": name,
                                                       "payload": EXAMPLE}}))["eventPublish"]
    assert published["errors"] == [] and published["created"]

    restored = (await account.gql(DEPRECATE, {"input": {"workspace": account.slug, "name": name,
                                                        "deprecated": False}}))["eventTypeDeprecate"]
    assert restored["eventType"] == {"name": name, "deprecated": False, "deprecatedAt": None,
                                     "deprecationReason": None}

    # Removing the schema: null clears, a field left out stays.
    cleared = (await account.gql(UPDATE, {"input": {"workspace": account.slug, "name": name, "schema": None}}
                                 ))["eventTypeUpdate"]
    assert cleared["eventType"]["schema"] is None and cleared["eventType"]["example"] == EXAMPLE


async def test_input_errors(account):
    name = fresh()
    assert (await register(account.gql, account.slug, name))["errors"] == []
    taken = await register(account.gql, account.slug, name)
    assert [(e["field"], e["code"]) for e in taken["errors"]] == [("name", "TAKEN")]
    reserved = await register(account.gql, account.slug, "integration.mine")
    assert [(e["field"], e["code"]) for e in reserved["errors"]] == [("name", "NOT_ALLOWED")]
    bad_name = await register(account.gql, account.slug, "Not An Event")
    assert [(e["field"], e["code"]) for e in bad_name["errors"]] == [("name", "INVALID")]
    nowhere = (await account.gql(REGISTER, {"input": {"name": fresh()}}))["eventTypeRegister"]
    assert [(e["field"], e["code"]) for e in nowhere["errors"]] == [("workspace", "REQUIRED")]
    unknown = (await account.gql(UPDATE, {"input": {"workspace": account.slug, "name": fresh()}}))["eventTypeUpdate"]
    assert [(e["field"], e["code"]) for e in unknown["errors"]] == [("name", "NOT_FOUND")]


async def test_invalid_schemas_and_examples_are_refused(account):
    def codes(payload):
        return [(e["field"], e["code"]) for e in payload["errors"]]

    typo = await register(account.gql, account.slug, fresh(),
                          schema={"type": "object", "properties": {"a": {"type": "strin"}}})
    assert codes(typo) == [("schema/properties/a/type", "INVALID_SCHEMA")]
    remote = await register(account.gql, account.slug, fresh(),
                            schema={"properties": {"a": {"$ref": "https://example.com/a.json"}}})
    assert codes(remote) == [("schema/properties/a/$ref", "INVALID_SCHEMA")]
    dangling = await register(account.gql, account.slug, fresh(), schema={"$ref": "#/$defs/missing"})
    assert codes(dangling) == [("schema/$ref", "INVALID_SCHEMA")]
    redos = await register(account.gql, account.slug, fresh(), schema={"pattern": "^(a+)+$"})
    assert codes(redos) == [("schema/pattern", "INVALID_SCHEMA")]
    not_object = await register(account.gql, account.slug, fresh(), schema=[1, 2])
    assert codes(not_object) == [("schema", "INVALID_SCHEMA")]
    example = await register(account.gql, account.slug, fresh(), schema=SIGNUP,
                             example={"user": {"email": 5}, "plan": "gold"})
    assert sorted(codes(example)) == [("example/plan", "INVALID_PAYLOAD"), ("example/user/email", "INVALID_PAYLOAD")]
    # Numbers past 64 bits (JSON receivers cannot read them) are a field error, not a server error.
    huge = await register(account.gql, account.slug, fresh(), example={"n": 2**70})
    assert [(e["field"], e["message"]) for e in huge["errors"]] == [("example", NOT_ENCODABLE)]
    huge_schema = await register(account.gql, account.slug, fresh(), schema={"maximum": 2**70})
    assert [(e["field"], e["message"]) for e in huge_schema["errors"]] == [("schema", NOT_ENCODABLE)]
    # A new schema must accept the kept example.
    name = fresh()
    assert (await register(account.gql, account.slug, name, schema=SIGNUP, example=EXAMPLE))["errors"] == []
    stricter = (await account.gql(UPDATE, {"input": {"workspace": account.slug, "name": name,
                                                     "schema": {**SIGNUP, "additionalProperties": False,
                                                                "properties": {"user": {}, "plan": {}}}}}
                                  ))["eventTypeUpdate"]
    assert codes(stricter) == [("example", "INVALID_PAYLOAD")]


async def test_who_may_change_the_catalog(account, other_account):
    name = fresh()
    member, admin = await member_of(account, Role.MEMBER), await member_of(account, Role.ADMIN)
    target = {"input": {"workspace": account.slug, "name": name}}
    assert await member.error_code(REGISTER, target) == "FORBIDDEN"
    assert await other_account.gql.error_code(REGISTER, target) == "NOT_FOUND"
    lacking = await token_with(account, [a for a in ABILITIES if a != "events:publish"])
    assert await lacking.error_code(REGISTER, target) == "FORBIDDEN"
    assert (await admin(REGISTER, target))["eventTypeRegister"]["errors"] == []
    # Members see the catalog (the pickers need it), the other workspace does not.
    assert (await in_catalog(member, account.slug, name))["registered"]
    assert await other_account.gql.error_code(LIST, {"ws": account.slug}) == "NOT_FOUND"
    assert await in_catalog(other_account.gql, other_account.slug, name) is None
    for mutation in (UPDATE, DEPRECATE):
        assert await member.error_code(mutation, target) == "FORBIDDEN"
        assert await other_account.gql.error_code(mutation, target) == "NOT_FOUND"


async def test_global_types_need_an_operator_and_reach_every_workspace(account, other_account):
    name = fresh("global")
    spec = {"input": {"global": True, "name": name, "description": "Everyone's", "schema": SIGNUP,
                      "example": EXAMPLE, "validation": "STRICT"}}
    assert await account.gql.error_code(REGISTER, spec) == "FORBIDDEN"
    operator = await token_with(account, [*ABILITIES, OPERATOR_ABILITY])
    made = (await operator(REGISTER, spec))["eventTypeRegister"]
    assert made["errors"] == [] and made["eventType"]["global"]
    both = (await operator(REGISTER, {"input": {"global": True, "workspace": account.slug, "name": fresh()}}
                           ))["eventTypeRegister"]
    assert [e["field"] for e in both["errors"]] == ["workspace"]

    listed = await in_catalog(other_account.gql, other_account.slug, name)
    assert listed["global"] and listed["description"] == "Everyone's"
    assert (await in_catalog(other_account.gql, None, name))["global"]  # the global catalog alone
    refused = (await other_account.gql(PUBLISH, {"input": {"workspace": other_account.slug, "type": name,
                                                           "payload": {"plan": "pro"}}}))["eventPublish"]
    assert [e["field"] for e in refused["errors"]] == ["payload"]  # `user` is required

    # A workspace's own type of the same name replaces the global one there.
    assert (await register(account.gql, account.slug, name, description="Ours"))["errors"] == []
    ours = await in_catalog(account.gql, account.slug, name)
    assert ours["global"] is False and ours["description"] == "Ours" and ours["schema"] is None
    published = (await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": name,
                                                       "payload": {"plan": "pro"}}}))["eventPublish"]
    assert published["errors"] == []
    assert await account.gql.error_code(UPDATE, {"input": {"global": True, "name": name}}) == "FORBIDDEN"
    changed = (await operator(UPDATE, {"input": {"global": True, "name": name, "validation": "LENIENT"}}
                              ))["eventTypeUpdate"]
    assert changed["errors"] == [] and changed["eventType"]["validation"] == "LENIENT"


async def test_strict_refuses_with_a_pointer_per_error(account):
    name = fresh()
    assert (await register(account.gql, account.slug, name, schema=SIGNUP, validation="STRICT"))["errors"] == []
    before = await Event.filter(workspace__slug=account.slug, type=name).count()
    refused = (await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": name, "payload": {
        "user": {"email": "a"}, "plan": "gold", "seats": 0, "items": ["x"]}}}))["eventPublish"]
    assert refused["event"] is None and refused["deliveries"] == []
    assert sorted((e["field"], e["code"]) for e in refused["errors"]) == [
        ("payload/plan", "INVALID_PAYLOAD"), ("payload/seats", "INVALID_PAYLOAD"),
        ("payload/user/email", "INVALID_PAYLOAD")]
    assert await Event.filter(workspace__slug=account.slug, type=name).count() == before

    # Pointers escape `/` and `~`; at most 20 errors.
    many = {"type": "object", "properties": {"a/b~c": {"type": "integer"}},
            "additionalProperties": {"type": "integer"}}
    assert (await account.gql(UPDATE, {"input": {"workspace": account.slug, "name": name, "schema": many}}
                              ))["eventTypeUpdate"]["errors"] == []
    payload = {"a/b~c": "x", **{f"k{i:02}": "x" for i in range(30)}}
    refused = (await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": name, "payload": payload}}
                                 ))["eventPublish"]
    fields = [e["field"] for e in refused["errors"]]
    assert len(fields) == 20 and "payload/a~1b~0c" in fields

    ok = (await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": name, "payload": {"n": 1}}}
                            ))["eventPublish"]
    assert ok["errors"] == [] and ok["event"]["schemaErrors"] is None


async def test_lenient_records_the_violation_and_delivers(account, receiver):
    name = fresh()
    assert (await register(account.gql, account.slug, name, schema=SIGNUP))["errors"] == []  # LENIENT by default
    url = receiver.script("/lenient", (200, {}, b"ok"))
    await connect_webhook(account, url, events=[name])
    published = (await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": name,
                                                       "payload": {"plan": "gold"}}}))["eventPublish"]
    assert published["errors"] == [] and published["created"]
    violations = published["event"]["schemaErrors"]
    assert sorted(v["pointer"] for v in violations) == ["", "/plan"]  # `user` missing (the object), plan not in enum
    assert all(v["message"] for v in violations)
    stored = await Event.get(id=published["event"]["id"])
    assert stored.schema_errors == violations
    [got] = await receiver.wait_for("/lenient", 1)
    assert orjson.loads(got.body)["data"] == {"plan": "gold"}
    assert (await settled(published["deliveries"][0]["id"])).status == "SUCCEEDED"


async def test_integration_test_sends_the_catalog_example(account, receiver):
    name = fresh()
    assert (await register(account.gql, account.slug, name, schema=SIGNUP, example=EXAMPLE))["errors"] == []
    iid, _ = await connect_webhook(account, receiver.script("/example", (200, {}, b"ok")))

    tested = (await account.gql(TEST, {"id": iid, "event": name}))["integrationTest"]
    assert tested["errors"] == [] and tested["result"]["success"]
    [got] = await receiver.wait_for("/example", 1)
    body = orjson.loads(got.body)
    assert body["type"] == name and body["test"] is True
    assert body["data"] == {**EXAMPLE, "test": True}  # the example, marked at its top level
    assert tested["delivery"]["event"] == {"type": name, "payload": {**EXAMPLE, "test": True}}

    # A registered type without an example says so; a type not in the catalog keeps the generic sample.
    bare = fresh()
    assert (await register(account.gql, account.slug, bare))["errors"] == []
    refused = (await account.gql(TEST, {"id": iid, "event": bare}))["integrationTest"]
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("event", "NOT_SUPPORTED")]
    generic = (await account.gql(TEST, {"id": iid, "event": "post.created"}))["integrationTest"]
    assert generic["errors"] == [] and generic["delivery"]["event"]["payload"]["title"] == "Sample submission"


async def test_a_changed_schema_applies_at_once(account):
    name = fresh()
    assert (await register(account.gql, account.slug, name, schema={"type": "object"}, validation="STRICT")
            )["errors"] == []
    publish = {"input": {"workspace": account.slug, "type": name, "payload": {"n": "one"}}}
    assert (await account.gql(PUBLISH, publish))["eventPublish"]["errors"] == []
    await account.gql(UPDATE, {"input": {"workspace": account.slug, "name": name,
                                         "schema": {"properties": {"n": {"type": "integer"}}}}})
    refused = (await account.gql(PUBLISH, publish))["eventPublish"]
    assert [e["field"] for e in refused["errors"]] == ["payload/n"]
