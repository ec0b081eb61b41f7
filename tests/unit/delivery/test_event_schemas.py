"""The event catalog's JSON Schema checks: what a schema may hold, pointers, capped errors, the cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core.errors import EventErrorCode
from app.delivery import event_schemas as es
from app.services.event_catalog import content_errors, name_errors

SCHEMA = {"type": "object", "required": ["user"],
          "properties": {"user": {"type": "object", "properties": {"email": {"type": "string"}}},
                         "tags": {"type": "array", "items": {"type": "string"}}}}


def pointers(found: list[es.Violation]) -> list[str]:
    return [v.pointer for v in found]


def test_json_pointers_escape_slash_and_tilde():
    assert es.json_pointer([]) == ""
    assert es.json_pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"


def test_payload_violations_point_at_the_value():
    validator = es.compile_schema(SCHEMA)
    assert es.violations(validator, {"user": {"email": "a@b.c"}, "tags": ["x"]}) == []
    found = es.violations(validator, {"user": {"email": 5}, "tags": ["x", 7]})
    assert sorted(pointers(found)) == ["/tags/1", "/user/email"]
    assert pointers(es.violations(validator, {})) == [""]  # `required`: the object that lacks it
    errors = es.field_errors("payload", found, EventErrorCode.INVALID_PAYLOAD)
    assert sorted(e.field for e in errors) == ["payload/tags/1", "payload/user/email"]
    assert {e.code for e in errors} == {EventErrorCode.INVALID_PAYLOAD}


def test_violations_are_capped_and_messages_short():
    validator = es.compile_schema({"additionalProperties": {"type": "integer"}})
    found = es.violations(validator, {f"k{i}": "x" * 1000 for i in range(50)})
    assert len(found) == es.MAX_ERRORS
    assert all(len(v.message) <= es.MAX_MESSAGE for v in found)


@pytest.mark.parametrize("schema, pointer", [
    ([], ""),
    ({"type": "strin"}, "/type"),
    ({"properties": {"a": {"minimum": "1"}}}, "/properties/a/minimum"),
    ({"$ref": "https://example.com/s.json"}, "/$ref"),
    ({"$ref": "other.json#/x"}, "/$ref"),
    ({"$ref": "#/$defs/missing"}, "/$ref"),
    ({"$ref": "#nowhere"}, "/$ref"),
    ({"properties": {"a": {"$id": "https://example.com/a"}}}, "/properties/a/$id"),
    ({"pattern": "("}, "/pattern"),
    ({"pattern": "^(a+)+$"}, "/pattern"),
    ({"patternProperties": {"(\\w+\\s?)*": {}}}, "/patternProperties/(\\w+\\s?)*"),
    ({"pattern": "a" * 600}, "/pattern"),
    ({"$schema": "https://example.com/my-draft"}, "/$schema"),
    ({"properties": {"enum": {"$ref": "https://example.com/e.json"}}}, "/properties/enum/$ref"),  # a name
    ({"$ref": "#"}, "/$ref"),  # applying it would never end
    ({"$defs": {"x": {"$anchor": "x", "anyOf": [{"not": {"$ref": "#x"}}]}}}, "/$defs/x/anyOf/0/not/$ref"),
])
def test_refused_schemas(schema, pointer):
    found = es.schema_problems(schema)
    assert found and found[0].pointer == pointer, found


@pytest.mark.parametrize("schema", [
    SCHEMA,
    {},
    {"$defs": {"email": {"type": "string", "format": "email"}}, "properties": {"e": {"$ref": "#/$defs/email"}}},
    {"$defs": {"x": {"$anchor": "x", "type": "integer"}}, "properties": {"n": {"$ref": "#x"}}},
    {"$id": "https://example.com/root.json", "properties": {"n": {"$ref": "#"}}},
    {"$schema": "http://json-schema.org/draft-07/schema#", "properties": {"n": {"type": "integer"}}},
    {"properties": {"slug": {"pattern": "^[a-z]+(\\.[a-z]+)*$"}}},
    {"enum": [{"$ref": "https://example.com/not-a-ref-just-data"}]},
    {"$defs": {"node": {"properties": {"next": {"$ref": "#/$defs/node"}}}}, "$ref": "#/$defs/node"},  # a linked list
])
def test_accepted_schemas(schema):
    assert es.schema_problems(schema) == []
    es.compile_schema(schema)


def test_a_schema_that_cannot_be_applied_is_a_violation_not_a_crash():
    looping = es.compile_schema({"$ref": "#"})  # schema_problems refuses it; this is the last resort
    [found] = es.violations(looping, {})
    assert found.pointer == "" and "recurses" in found.message


def test_size_depth_and_node_guards():
    assert es.schema_problems({"description": "x" * (es.MAX_SCHEMA_BYTES + 1)})[0].message.startswith("is larger")
    deep: dict = {}
    node = deep
    for _ in range(es.MAX_SCHEMA_DEPTH + 2):
        node["items"] = {}
        node = node["items"]
    assert "deeper" in es.schema_problems(deep)[0].message
    wide = {"allOf": [{}] * es.MAX_SCHEMA_NODES}  # small, but many nodes
    assert "values" in es.schema_problems(wide)[0].message


@pytest.mark.parametrize("pattern, risky", [
    ("(a+)+", True), ("^(a|b)*$", False), ("(\\w+\\s?)*$", True), ("^(([a-z])+.)+[A-Z]([a-z])+$", True),
    ("(.*a){20}", True), ("^\\d{3}-\\d{4}$", False), ("^(\\+\\d{1,3})?\\d+$", False), ("(?:a+)+", True),
    ("[(a+)]+", False), ("(?=a+)+", False), ("^[a-z]+(\\.[a-z]+)*$", False),
])
def test_nested_quantifiers(pattern, risky):
    assert (es.pattern_problem(pattern) is not None) is risky


def test_the_cache_keys_on_the_version_and_forgets_the_oldest():
    cache = es.ValidatorCache(size=2)
    v1, v2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    cache.put(("etp_a", v1), "one")
    assert cache.get(("etp_a", v1)) == (True, "one")
    assert cache.get(("etp_a", v2)) == (False, None)  # changed since: compiled again
    cache.put(("etp_b", v1), None)  # a type without a schema is cached too
    assert cache.get(("etp_b", v1)) == (True, None)
    cache.put(("etp_c", v1), "three")
    assert cache.get(("etp_a", v1)) == (False, None)


def test_checked_refuses_only_strict():
    from app.models import EventValidation

    found = [es.Violation("/a", "bad")]
    strict = es.Checked("etp_x", EventValidation.STRICT, False, found)
    lenient = es.Checked("etp_x", EventValidation.LENIENT, False, found)
    assert strict.refused and not lenient.refused
    assert [e.field for e in strict.errors()] == ["payload/a"]
    assert lenient.recorded() == [{"pointer": "/a", "message": "bad"}]
    assert es.Checked("etp_x", EventValidation.STRICT, False).recorded() is None


def test_catalog_content_checks():
    assert [e.field for e in name_errors("integration.x")] == ["name"]
    assert name_errors("session.completed") == []
    errors = content_errors("ok", SCHEMA, {"user": {"email": 1}})
    assert [(e.field, e.code) for e in errors] == [("example/user/email", EventErrorCode.INVALID_PAYLOAD)]
    assert [e.field for e in content_errors("ok", None, [1])] == ["example"]
    assert [e.field for e in content_errors("x" * 3000, None, None)] == ["description"]
    assert [e.code for e in content_errors("", {"type": 1}, None)] == [EventErrorCode.INVALID_SCHEMA]


async def test_publish_time_lookup_prefers_the_workspace_and_reuses_what_it_read(db, monkeypatch):
    import random

    from app.models import EventType, EventValidation, Workspace

    es.forget_lookups()
    ws = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Catalog")
    name = f"unit.t{random.getrandbits(32):x}"
    assert await es.check_payload(ws.id, name, {}) is None
    assert await es.check_payload(ws.id, "integration.disabled", {}) is None  # Hookyard's own: never looked up

    await EventType.create(workspace=None, name=name, json_schema={"required": ["a"]},
                           validation=EventValidation.STRICT)
    assert await es.check_payload(ws.id, name, {}) is None  # within the TTL: what was read stays
    es.forget_lookups()  # what the catalog's use-cases call after a change
    assert (await es.check_payload(ws.id, name, {})).refused

    own = await EventType.create(workspace=ws, name=name, json_schema={"required": ["b"]})
    es.forget_lookups()
    checked = await es.check_payload(ws.id, name, {"a": 1})
    assert checked.type_id == own.id and not checked.refused and checked.recorded() == [
        {"pointer": "", "message": "'b' is a required property"}]

    compiled = []
    monkeypatch.setattr(es, "compile_schema", lambda schema: compiled.append(schema) or es.Draft202012Validator(schema))
    es.VALIDATORS.clear()
    monkeypatch.setattr(es, "LOOKUP_TTL_SECONDS", 0.0)  # a query per publish, to see the version move
    for _ in range(3):
        await es.check_payload(ws.id, name, {"b": 1})
    assert len(compiled) == 1  # once per version of the type
    own.json_schema = {"required": ["c"]}
    await own.save()
    assert (await es.check_payload(ws.id, name, {"b": 1})).violations
    assert compiled == [{"required": ["b"]}, {"required": ["c"]}]
