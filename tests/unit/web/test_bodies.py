"""What a GraphQL POST body must be, and the 400 each way of not being one gets."""

from __future__ import annotations

import pytest

from app.web.bodies import MAX_DEPTH, GraphQLBody, decode_json, depth_of, parse_graphql_body
from app.web.errors import BadRequest


def refusal(raw: bytes, content_type: str = "application/json") -> str:
    with pytest.raises(BadRequest) as caught:
        parse_graphql_body(raw, content_type)
    return caught.value.message


def test_a_good_body_is_read():
    body = parse_graphql_body(b'{"query": "query Q { a }", "variables": {"n": 123456789012345678901234567890},'
                              b' "operationName": "Q", "extensions": {}}', "application/json; charset=utf-8")
    assert body == GraphQLBody("query Q { a }", {"n": 123456789012345678901234567890}, "Q", {})
    assert parse_graphql_body(b'{"query": "{ a }", "variables": null}', "application/graphql-response+json").query


@pytest.mark.parametrize("raw, says", [
    (b'{"query": "\xff"}', "UTF-8"),
    (b"[" * 2000 + b"]" * 2000, "nested too deeply"),
    (b'{"query": "{ a }", "variables": {"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}}",
     "nested too deeply"),
    (b'"text"', "JSON object"),
    (b"3", "JSON object"),
    (b"[]", "batched"),
    (b"{}", "no `query`"),
    (b'{"query": null}', "no `query`"),
    (b'{"query": ["a"]}', "non-empty string"),
    (b'{"query": "{ a }", "variables": "x"}', "`variables`"),
    (b'{"query": "{ a }", "extensions": 1}', "`extensions`"),
    (b'{"query": "{ a }", "operationName": {}}', "`operationName`"),
    (b'{"query": "{ a }", "variables": {"x": Infinity}}', "Infinity"),
    (b'{"query": "{ a }", "variables": {"\\udc00": 1}}', "surrogate"),
    (b'{"query": ', "not valid JSON"),
    (b"  ", "empty"),
])
def test_malformed_bodies_say_what_is_wrong(raw, says):
    assert says in refusal(raw)


def test_only_json_is_taken():
    assert "application/json" in refusal(b'{"query": "{ a }"}', "text/plain")
    assert "application/json" in refusal(b'{"query": "{ a }"}', "")


def test_depth_is_counted_without_recursion():
    assert depth_of(1) == 0 and depth_of([]) == 1 and depth_of({"a": [{"b": []}]}) == 4
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert depth_of(deep, limit=10) == 11


def test_a_surrogate_pair_is_a_character():
    assert decode_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}
