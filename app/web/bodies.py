"""Reading a GraphQL POST body, refusing what is not one with a clear 400 (never a 500).

The body must be UTF-8 JSON nested at most `MAX_DEPTH` levels (a document nested thousands of
levels deep is refused, not a RecursionError), without NaN or Infinity, an object, with `query` a
non-empty string, `variables` and `extensions` objects and `operationName` a string when given.
Integers keep their exact value, as the standard library reads them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from app.web.errors import BadRequest

# Deeper than any real payload, and within what the JSON encoders downstream write (orjson: 254).
MAX_DEPTH = 128
# A \uD800-\uDFFF escape: half of a surrogate pair, which alone is no character (and no database stores it).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


@dataclass(frozen=True)
class GraphQLBody:
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    extensions: dict[str, Any] | None = None


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the request body holds {name}, which is not JSON")


def _strings(value: Any):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def has_lone_surrogate(value: Any) -> bool:
    for text in _strings(value):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `value` nests lists and objects, counted until it passes `limit` (no recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def decode_json(raw: bytes | str) -> Any:
    """JSON as Python values, or BadRequest (never a RecursionError or UnicodeDecodeError) saying why not."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the request body is not valid UTF-8") from None
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"the request body is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None
    if depth_of(value) > MAX_DEPTH:
        raise BadRequest(f"the request body is nested too deeply (at most {MAX_DEPTH} levels)")
    if _SURROGATE_ESCAPE.search(raw) and has_lone_surrogate(value):
        raise BadRequest("the request body escapes half of a UTF-16 surrogate pair, which is not a character")
    return value


def parse_graphql_body(raw: bytes, content_type: str | None) -> GraphQLBody:
    """The GraphQL request in a POST body, or BadRequest saying what is wrong with it."""
    if not is_json(content_type):
        raise BadRequest("send the GraphQL request as a JSON object with Content-Type: application/json")
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object with a `query`")
    data = decode_json(raw)
    if isinstance(data, list):
        raise BadRequest("batched requests are not supported; send one JSON object with a `query`")
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object with a `query`")
    query = data.get("query")
    if query is None:
        raise BadRequest("the request body has no `query`")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("`query` must be a non-empty string")
    variables = data.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("`variables` must be a JSON object or null")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("`operationName` must be a string or null")
    extensions = data.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest("`extensions` must be a JSON object or null")
    return GraphQLBody(query=query, variables=variables, operation_name=operation_name or None,
                       extensions=extensions)
