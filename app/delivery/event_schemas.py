"""JSON Schemas of the event catalog: checking a schema before it is stored, compiling it once per
version, and checking payloads against it when an event is published.

Schemas are JSON Schema (draft 2020-12 unless `$schema` names another draft `jsonschema` knows).
`format` is an annotation, not checked. What a schema may hold is limited so that compiling and
applying it stays cheap: its size, depth and number of nodes; `$ref`s only inside the schema (nothing
is ever fetched); no nested `$id`; and `pattern`s that are short and have no quantified group with a
quantifier inside (`(a+)+`, the usual catastrophic-backtracking shape; best effort).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from jsonschema import Draft202012Validator, validators
from jsonschema_specifications import REGISTRY as METASCHEMAS
from referencing.exceptions import Unresolvable
from tortoise.expressions import Q

from app.core.errors import EventErrorCode, FieldError
from app.core.logging import get_logger
from app.delivery.health import SYSTEM_PREFIX
from app.models import EventType, EventValidation

log = get_logger(__name__)

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_NODES = 5000
MAX_PATTERN_LENGTH = 500
MAX_ERRORS = 20  # per payload (or schema): enough to fix it, not a wall of text
MAX_MESSAGE = 300
CACHE_SIZE = 1024  # compiled validators kept per process
# How long a process reuses what the catalog said about a (workspace, type): publishing then costs no
# query. Changes made in the process apply at once (`forget_lookups`); in other processes, within this.
LOOKUP_TTL_SECONDS = 1.0
LOOKUP_CACHE_SIZE = 4096

# Values that are data, not subschemas: never walked for `$ref`s and patterns.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples", "example"})
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose value maps names (of properties, patterns, definitions) to subschemas.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas",
                        "dependencies"})


@dataclass(frozen=True)
class Violation:
    """One place where a JSON document breaks a schema."""

    pointer: str  # RFC 6901 JSON pointer into the document; "" for the document itself
    message: str

    def as_json(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


def json_pointer(path: Iterable[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def field_errors(prefix: str, violations: list[Violation], code: EventErrorCode) -> list[FieldError]:
    """One field error per violation; `field` is `prefix` then the pointer (`payload/user/email`)."""
    return [FieldError(prefix + v.pointer, v.message, code) for v in violations]


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


# ---------------------------------------------------------------- checking a schema


def validator_class(schema: dict) -> type | None:
    """The `jsonschema` validator for the schema's `$schema` (draft 2020-12 when none); None when unknown."""
    if "$schema" not in schema:
        return Draft202012Validator
    if not isinstance(schema["$schema"], str):
        return None
    return validators.validator_for(schema, default=None)


# Why a value from a request cannot be stored as JSON (orjson refuses integers beyond 64 bits).
NOT_ENCODABLE = "holds a number outside the 64-bit range JSON receivers can read"


def encoded_size(value: Any) -> int | None:
    """The size of `value` as JSON; None when it cannot be encoded (see NOT_ENCODABLE)."""
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        return None


def schema_problems(schema: Any) -> list[Violation]:
    """Why `schema` cannot be stored as an event type's schema; empty when it can."""
    if not isinstance(schema, dict):
        return [Violation("", "must be a JSON Schema object")]
    size = encoded_size(schema)
    if size is None:
        return [Violation("", NOT_ENCODABLE)]
    if size > MAX_SCHEMA_BYTES:
        return [Violation("", f"is larger than {MAX_SCHEMA_BYTES // 1024} KiB")]
    problems = _walk_problems(schema)
    if problems:
        return problems[:MAX_ERRORS]
    cls = validator_class(schema)
    if cls is None:
        return [Violation("/$schema", "names no JSON Schema draft this server knows (use draft 4, 6, 7, 2019-09 "
                                      "or 2020-12, or leave it out for 2020-12)")]
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER, registry=METASCHEMAS)
    try:
        errors = list(islice(meta.iter_errors(schema), MAX_ERRORS))
    except Unresolvable as exc:  # a metaschema that refers outside the ones we hold
        return [Violation("/$schema", _short(f"cannot be applied: {exc}"))]
    return [Violation(json_pointer(e.absolute_path), _short(e.message)) for e in errors]


def _walk_problems(schema: dict) -> list[Violation]:
    problems: list[Violation] = []
    nodes = 0
    anchors: dict[str, str] = {}  # name -> pointer of the subschema that has it
    refs: list[tuple[list, str]] = []
    subschemas: dict[str, dict] = {}  # pointer -> every object that may be a subschema

    def walk(node: Any, path: list, depth: int, names: bool = False) -> None:
        nonlocal nodes
        nodes += 1
        if depth > MAX_SCHEMA_DEPTH:
            problems.append(Violation(json_pointer(path), f"nests deeper than {MAX_SCHEMA_DEPTH} levels"))
            return
        if nodes > MAX_SCHEMA_NODES:
            if nodes == MAX_SCHEMA_NODES + 1:
                problems.append(Violation("", f"has more than {MAX_SCHEMA_NODES} values"))
            return
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, [*path, i], depth + 1)
            return
        if not isinstance(node, dict):
            return
        if names:  # {name: subschema}: the names are not keywords
            for key, value in node.items():
                walk(value, [*path, key], depth + 1)
            return
        subschemas[json_pointer(path)] = node
        for key, value in node.items():
            here = [*path, key]
            if key in _REF_KEYWORDS and isinstance(value, str):
                refs.append((here, value))
            elif key == "$id" and path and isinstance(value, str):
                problems.append(Violation(json_pointer(here), "only the schema's root may have an `$id`"))
            elif key in ("$anchor", "$dynamicAnchor") and isinstance(value, str):
                anchors[value] = json_pointer(path)
            elif key == "pattern" and isinstance(value, str):
                if message := pattern_problem(value):
                    problems.append(Violation(json_pointer(here), message))
            elif key == "patternProperties" and isinstance(value, dict):
                for pattern in value:
                    if message := pattern_problem(pattern):
                        problems.append(Violation(json_pointer([*here, pattern]), message))
            if key in _DATA_KEYWORDS:
                nodes += 1
                continue
            walk(value, here, depth + 1, names=key in _NAME_MAPS)

    walk(schema, [], 0)
    for path, ref in refs:
        if message := _ref_problem(schema, ref, anchors):
            problems.append(Violation(json_pointer(path), message))
    if not problems and (looping := _ref_loop(subschemas, anchors)):
        problems.append(Violation(looping, "makes a loop of `$ref`s that never reaches into the payload"))
    return problems


_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")


def _ref_loop(subschemas: dict[str, dict], anchors: dict[str, str]) -> str | None:
    """The pointer of a `$ref` that leads back to where it is without going into the payload (`{"$ref": "#"}`):
    applying such a schema never ends. Follows `$ref` and the keywords applied to the same value."""

    def edges(pointer: str, node: dict) -> list[tuple[str, str]]:  # (where the edge is, where it leads)
        out = []
        for key in _IN_PLACE_LISTS:
            if isinstance(node.get(key), list):
                out += [(pointer, f"{pointer}/{key}/{i}") for i in range(len(node[key]))]
        out += [(pointer, f"{pointer}/{key}") for key in _IN_PLACE_ONE if isinstance(node.get(key), dict)]
        if isinstance(node.get("dependentSchemas"), dict):
            out += [(pointer, pointer + json_pointer(["dependentSchemas", k])) for k in node["dependentSchemas"]]
        for key in _REF_KEYWORDS:
            ref = node.get(key)
            if isinstance(ref, str) and ref.startswith("#"):
                fragment = ref[1:]
                target = fragment if not fragment or fragment.startswith("/") else anchors.get(fragment)
                if target is not None:
                    out.append((f"{pointer}/{key}", target))
        return out

    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in subschemas:
        if start in state:
            continue
        stack = [(start, iter(edges(start, subschemas[start])))]
        state[start] = 1
        while stack:
            pointer, pending = stack[-1]
            step = next(pending, None)
            if step is None:
                state[pointer] = 2
                stack.pop()
                continue
            where, target = step
            if target not in subschemas:
                continue
            if state.get(target) == 1:
                return where
            if target not in state:
                state[target] = 1
                stack.append((target, iter(edges(target, subschemas[target]))))
    return None


def _ref_problem(schema: dict, ref: str, anchors: dict[str, str]) -> str | None:
    if not ref.startswith("#"):
        return "may only refer inside this schema (`#/$defs/...`); nothing is fetched"
    fragment = ref[1:]
    if not fragment:
        return None
    if not fragment.startswith("/"):
        return None if fragment in anchors else f"no `$anchor` named {fragment!r} in this schema"
    node: Any = schema
    for token in fragment[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return f"points at nothing in this schema: {ref[:200]!r}"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why a `pattern` is refused: too long, not a regular expression, or a shape known to backtrack."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"is longer than {MAX_PATTERN_LENGTH} characters"
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return _short(f"is not a regular expression: {exc}")
    if _nested_quantifier(pattern):
        return "repeats a group that repeats itself, such as `(a+)+`, which can take exponential time"
    return None


def _nested_quantifier(pattern: str) -> bool:
    """Whether a repeated group starts with a repeated atom: `(a+)+`, `(\\w+\\s?)*`, `(.*a){20}`, the
    shapes that backtrack exponentially. `(\\.[a-z]+)*` passes: its literal `.` keeps the repeats apart."""
    starts: list[int] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            end = _atom_end(pattern[i:])
            if end is None:
                return False
            i += end
            continue
        if ch == "(":
            starts.append(i + 1)
        elif ch == ")" and starts:
            start = starts.pop()
            if pattern[i + 1: i + 2] in ("*", "+", "{") and _starts_repeated(pattern[start:i]):
                return True
        i += 1
    return False


_GROUP_PREFIX = re.compile(r"\?(?::|P?<\w+>|[=!]|<[=!])")


def _starts_repeated(content: str) -> bool:
    if content.startswith("?"):
        prefix = _GROUP_PREFIX.match(content)
        if prefix is None or prefix.group() in ("?=", "?!", "?<=", "?<!"):  # lookarounds consume nothing
            return False
        content = content[prefix.end():]
    end = _atom_end(content)
    return end is not None and content[end: end + 1] in ("*", "+", "{")


def _atom_end(s: str) -> int | None:
    """Where the first atom of `s` ends: an escape, a character class, a group or one character."""
    if not s:
        return None
    if s[0] == "\\":
        return 2
    if s[0] == "[":
        j = 1
        if s[j: j + 1] == "^":
            j += 1
        if s[j: j + 1] == "]":
            j += 1
        while j < len(s):
            if s[j] == "\\":
                j += 2
                continue
            if s[j] == "]":
                return j + 1
            j += 1
        return None
    if s[0] == "(":
        depth, j = 0, 0
        while j < len(s):
            if s[j] == "\\":
                j += 2
                continue
            if s[j] == "[":
                end = _atom_end(s[j:])
                if end is None:
                    return None
                j += end
                continue
            depth += {"(": 1, ")": -1}.get(s[j], 0)
            if depth == 0:
                return j + 1
            j += 1
        return None
    return 1


# ---------------------------------------------------------------- compiling and applying


def compile_schema(schema: dict):
    """A validator for a schema `schema_problems` accepted. Refers to nothing outside it."""
    return validator_class(schema)(schema, registry=METASCHEMAS)


def violations(validator, document: Any, limit: int = MAX_ERRORS) -> list[Violation]:
    """Where `document` breaks the compiled schema, at most `limit` places, in the schema's order."""
    try:
        return [Violation(json_pointer(e.absolute_path), _short(e.message))
                for e in islice(validator.iter_errors(document), limit)]
    except Unresolvable as exc:  # schema_problems checks references; this is a last resort
        return [Violation("", _short(f"the event type's schema could not be applied: {exc}"))]
    except RecursionError:  # a loop schema_problems missed, or a payload nested past Python's limit
        return [Violation("", "the event type's schema could not be applied: it recurses too deeply")]


class ValidatorCache:
    """Compiled validators by (event type id, updated_at): every change to a type moves its key."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._entries: OrderedDict[tuple[str, datetime], Any] = OrderedDict()

    def get(self, key: tuple[str, datetime]) -> tuple[bool, Any]:
        if key in self._entries:
            self._entries.move_to_end(key)
            return True, self._entries[key]
        return False, None

    def put(self, key: tuple[str, datetime], validator: Any) -> None:
        self._entries[key] = validator
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


VALIDATORS = ValidatorCache()
_warned_deprecated: OrderedDict[tuple[str, datetime], None] = OrderedDict()
# (workspace id, type name) -> (when looked up, the catalog row's id, validation, deprecated_at, updated_at or None)
_lookups: OrderedDict[tuple[str, str], tuple[float, dict | None]] = OrderedDict()


def forget_lookups() -> None:
    """After a change to the catalog: this process looks again at once."""
    _lookups.clear()


async def _catalog_row(workspace_id: str, type_name: str) -> dict | None:
    key, now = (workspace_id, type_name), time.monotonic()
    cached = _lookups.get(key)
    if cached is not None and now - cached[0] < LOOKUP_TTL_SECONDS:
        return cached[1]
    rows = await EventType.filter(Q(workspace_id=workspace_id) | Q(workspace_id__isnull=True), name=type_name).values(
        "id", "workspace_id", "validation", "deprecated_at", "updated_at")
    row = min(rows, key=lambda r: r["workspace_id"] is None) if rows else None  # the workspace's own first
    _lookups[key] = (now, row)
    _lookups.move_to_end(key)
    while len(_lookups) > LOOKUP_CACHE_SIZE:
        _lookups.popitem(last=False)
    return row


# ---------------------------------------------------------------- at publish time


@dataclass
class Checked:
    """What the catalog says about a payload about to be published."""

    type_id: str
    validation: EventValidation
    deprecated: bool
    violations: list[Violation] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return bool(self.violations) and self.validation == EventValidation.STRICT

    def errors(self) -> list[FieldError]:
        return field_errors("payload", self.violations, EventErrorCode.INVALID_PAYLOAD)

    def recorded(self) -> list[dict[str, str]] | None:
        """What the event keeps (LENIENT): the violations, or None when there are none."""
        return [v.as_json() for v in self.violations] or None


async def check_payload(workspace_id: str, type_name: str, payload: Any) -> Checked | None:
    """The payload against the catalog's type of that name (the workspace's own before a global one);
    None when the catalog has none. At most one small query (none within LOOKUP_TTL_SECONDS of the last);
    the schema is read and compiled once per version of the type."""
    if type_name.startswith(SYSTEM_PREFIX):  # Hookyard's own events are never in the catalog
        return None
    row = await _catalog_row(workspace_id, type_name)
    if row is None:
        return None
    key = (row["id"], row["updated_at"])
    found, validator = VALIDATORS.get(key)
    if not found:
        stored = await EventType.filter(id=row["id"]).values_list("json_schema", flat=True)
        validator = compile_schema(stored[0]) if stored and stored[0] is not None else None
        VALIDATORS.put(key, validator)
    checked = Checked(type_id=row["id"], validation=EventValidation(row["validation"]),
                      deprecated=row["deprecated_at"] is not None,
                      violations=violations(validator, payload) if validator is not None else [])
    if checked.deprecated and key not in _warned_deprecated:  # once per type version and process
        _warned_deprecated[key] = None
        while len(_warned_deprecated) > CACHE_SIZE:
            _warned_deprecated.popitem(last=False)
        log.warning("event type is deprecated", workspace_id=workspace_id, event_type=type_name,
                    event_type_id=row["id"])
    return checked


def log_recorded(workspace_id: str, event_id: str, type_name: str, checked: Checked) -> None:
    """A LENIENT type's payload that broke its schema and was published anyway. Pointers only: the
    messages quote payload values."""
    log.warning("event payload does not match its event type's schema", workspace_id=workspace_id,
                event_id=event_id, event_type=type_name, pointers=[v.pointer for v in checked.violations])
