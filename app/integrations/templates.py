"""Payload templates: `config.template`, a JMESPath expression that reshapes what an integration sends.

The template reads the event envelope (`envelope`) and answers the JSON the integration sends
instead of its built-in body or message. JMESPath is a query language, not a programming one:
no code runs, no names are looked up, no I/O happens; the same input always gives the same output.

What bounds an evaluation (`run`):
  - the source: at most `MAX_SOURCE_BYTES`, its syntax tree at most `MAX_AST_DEPTH` deep, only the
    built-in functions, with the right number of arguments (checked at save time, `validate_template`);
  - the input: the event payload, at most 256 KiB (the API refuses larger events);
  - every value the evaluation makes, kept or thrown away: at most `MAX_WORK` units (about bytes once
    serialized, shared parts counted each time they appear) and `MAX_DEPTH` levels deep, checked after
    each step that makes one, so no step can work on more than that (`join` is checked before it joins);
  - the number of steps (`MAX_STEPS`) and, as a backstop, the wall clock (`TIME_LIMIT` seconds),
    both checked between steps;
  - the output: at most `MAX_OUTPUT_BYTES` serialized.
A failing template raises `TemplateFailed`: the delivery FAILS with its message, nothing is sent.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import jmespath
import orjson
from jmespath import exceptions as jp_errors
from jmespath import functions as jp_functions
from jmespath import visitor as jp_visitor

from app.core.errors import CommonErrorCode, FieldError, IntegrationErrorCode
from app.integrations.base import DeliveryContext, IntegrationKind, RequestNotBuilt

TEMPLATE_KEY = "template"
MAX_SOURCE_BYTES = 4 * 1024
MAX_AST_DEPTH = 64
MAX_OUTPUT_BYTES = 256 * 1024
MAX_WORK = 1024 * 1024
MAX_DEPTH = 160
MAX_STEPS = 100_000
TIME_LIMIT = 0.1  # seconds
_CLOCK_EVERY = 64  # steps between looks at the clock
# The steps that make new values; the others answer (a part of) their input or of a value already weighed.
_MAKERS = frozenset({"multi_select_dict", "multi_select_list", "flatten", "projection", "value_projection",
                     "filter_projection", "function_expression", "literal", "slice"})


class TemplateFailed(RequestNotBuilt):
    """The template could not make what the integration sends from this event."""


# ---------------------------------------------------------------- the input


def timestamp_text(ctx: DeliveryContext) -> str:
    return ctx.timestamp.isoformat().replace("+00:00", "Z")


def envelope(event_type: str, payload: Any, *, id: str, timestamp: str, test: bool,  # noqa: A002
             workspace_slug: str, workspace_name: str = "", form_slug: str | None = None) -> dict[str, Any]:
    """What a template reads: the webhook body's `type`, `timestamp` and `data` (the event payload),
    with `id` (the `webhook-id` header: the delivery), `test`, `workspace` and `form`."""
    return {
        "type": event_type,
        "id": id,
        "timestamp": timestamp,
        "data": payload,
        "test": test,
        "workspace": {"slug": workspace_slug, "name": workspace_name or workspace_slug},
        "form": {"slug": form_slug} if form_slug else None,
    }


def envelope_of(ctx: DeliveryContext) -> dict[str, Any]:
    return envelope(ctx.event_type, ctx.payload, id=ctx.delivery_id, timestamp=timestamp_text(ctx),
                    test=ctx.is_test, workspace_slug=ctx.workspace_slug, workspace_name=ctx.workspace_name,
                    form_slug=ctx.form_slug)


# ---------------------------------------------------------------- save time


def split_template(kind: IntegrationKind, config: dict[str, Any],
                   path: str = "config") -> tuple[dict[str, Any], str | None, list[FieldError]]:
    """Takes `template` out of `config` before the type validates the rest, like `timeoutSeconds`.

    Answers the config without it, the template (None: the type's built-in body) and any error.
    """
    rest = dict(config)
    value = rest.pop(TEMPLATE_KEY, None)
    field_path = f"{path}.{TEMPLATE_KEY}"
    if value is None:
        return rest, None, []
    if not kind.supports_template:
        return rest, None, [FieldError(field_path, f"{kind.label} integrations cannot use a template (webhook, "
                                                   "Slack and Discord integrations can)",
                                       CommonErrorCode.NOT_SUPPORTED)]
    return rest, *_checked(value, field_path)


def with_template(config: dict[str, Any], template: str | None) -> dict[str, Any]:
    """The config a type validated, with the template `split_template` took out put back (when one was set)."""
    return config if template is None else {**config, TEMPLATE_KEY: template}


def validate_template(value: Any, path: str = "config.template") -> list[FieldError]:
    """Why `value` cannot be a template (a JMESPath expression), or nothing."""
    return _checked(value, path)[1]


def _checked(value: Any, path: str) -> tuple[str | None, list[FieldError]]:
    if not isinstance(value, str):
        return None, [FieldError(path, "must be a JMESPath expression (a string), or null for none",
                                 IntegrationErrorCode.INVALID_TEMPLATE)]
    if not value.strip():
        return None, [FieldError(path, "is empty: set null to send the built-in body",
                                 IntegrationErrorCode.INVALID_TEMPLATE)]
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        return None, [FieldError(path, f"is {size} bytes; a template may have at most {MAX_SOURCE_BYTES}",
                                 CommonErrorCode.TOO_LONG)]
    try:
        compiled(value)
    except TemplateFailed as exc:
        return None, [FieldError(path, str(exc), IntegrationErrorCode.INVALID_TEMPLATE)]
    return value, []


@lru_cache(maxsize=512)
def compiled(source: str) -> dict[str, Any]:
    """The syntax tree of a template; raises TemplateFailed saying what is wrong with it."""
    try:
        parsed = jmespath.compile(source).parsed
    except jp_errors.JMESPathError as exc:
        first = str(exc).split("\n", 1)[0].removesuffix(", for expression:").rstrip(":")
        column = getattr(exc, "lex_position", None)
        where = f" at column {column}" if isinstance(column, int) and "column" not in first else ""
        raise TemplateFailed(f"is not a valid JMESPath expression: {first}{where}") from None
    except RecursionError:
        raise TemplateFailed("is nested too deeply") from None
    _check_tree(parsed)
    return parsed


def _check_tree(tree: dict[str, Any]) -> None:
    table = _Functions.FUNCTION_TABLE
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_AST_DEPTH:
            raise TemplateFailed(f"is nested too deeply: at most {MAX_AST_DEPTH} levels of expressions")
        if node.get("type") == "function_expression":
            name, args = node.get("value"), len(node.get("children") or ())
            spec = table.get(name)
            if spec is None:
                raise TemplateFailed(f"calls {name}(), which is not a JMESPath function")
            signature = spec["signature"]
            variadic = bool(signature) and signature[-1].get("variadic")
            if (args < len(signature)) if variadic else (args != len(signature)):
                wanted = f"at least {len(signature)}" if variadic else str(len(signature))
                raise TemplateFailed(f"calls {name}() with {args} argument(s); it takes {wanted}")
        stack.extend((child, depth + 1) for child in node.get("children") or () if isinstance(child, dict))


# ---------------------------------------------------------------- send time


def run(source: str, data: Any) -> Any:
    """The template's output for `data`: a JSON value at most MAX_OUTPUT_BYTES serialized.

    Raises TemplateFailed when the template is not valid, breaks a limit, fails (such as `join` of a
    null) or answers null (a misspelled field gives null: sending null is never what was meant).
    """
    try:
        tree = compiled(source)
    except TemplateFailed as exc:  # stored before a rule it breaks was added
        raise TemplateFailed(f"the template {exc}") from None
    interpreter = _Interpreter()
    try:
        output = interpreter.visit(tree, data)
    except TemplateFailed:
        raise
    except RecursionError:
        raise TemplateFailed("the template failed: values are nested too deeply") from None
    except Exception as exc:  # a type error in a function, a number too large, ...
        raise TemplateFailed(f"the template failed: {_describe(exc)}") from None
    if output is None:
        raise TemplateFailed("the template answered null (is a field name misspelled, or missing from this "
                             "event?)")
    try:
        size = len(orjson.dumps(output))
    except orjson.JSONEncodeError as exc:
        raise TemplateFailed(f"the template's output is not JSON that can be sent: {exc}") from None
    if size > MAX_OUTPUT_BYTES:
        raise TemplateFailed(f"the template's output is {size} bytes serialized; at most {MAX_OUTPUT_BYTES} "
                             "may be sent")
    return output


def type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


class _Functions(jp_functions.Functions):
    """The built-in functions, with `join` refusing to make a string larger than MAX_WORK."""

    @jp_functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator, array):
        size = len(separator) * max(len(array) - 1, 0) + sum(len(s) for s in array)
        if size > MAX_WORK:
            raise TemplateFailed(f"the template failed: join() would make a string of {size} characters; "
                                 f"at most {MAX_WORK} are allowed")
        return separator.join(array)


_OPTIONS = jmespath.Options(dict_cls=dict, custom_functions=_Functions())


class _Interpreter(jp_visitor.TreeInterpreter):
    """JMESPath's interpreter, metered: every step counts and every value it makes is weighed."""

    def __init__(self) -> None:
        super().__init__(_OPTIONS)
        self.steps = 0
        self.deadline = time.monotonic() + TIME_LIMIT
        # id -> (the container, kept alive so its id is not reused; its weight; its height)
        self.weighed: dict[int, tuple[Any, int, int]] = {}

    def visit(self, node, *args, **kwargs):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateFailed(f"the template failed: it took more than {MAX_STEPS} steps")
        if self.steps % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise TemplateFailed(f"the template failed: it ran longer than {int(TIME_LIMIT * 1000)} ms")
        result = super().visit(node, *args, **kwargs)
        if node["type"] in _MAKERS and isinstance(result, dict | list | str):
            self._weigh(result, 0)
        return result

    def _weigh(self, value: Any, depth: int) -> tuple[int, int]:
        """The value's weight (about its bytes serialized) and height; raises TemplateFailed over the limits."""
        if isinstance(value, str):
            weight = len(value) + 2
            if weight > MAX_WORK:
                raise TemplateFailed(f"the template failed: it made a value larger than {MAX_WORK} bytes")
            return weight, 0
        if not isinstance(value, dict | list):
            return 8, 0
        seen = self.weighed.get(id(value))
        if seen is not None and seen[0] is value:
            return seen[1], seen[2]
        if depth >= MAX_DEPTH:
            raise TemplateFailed(f"the template failed: it made a value nested deeper than {MAX_DEPTH} levels")
        weight, height = 2, 0
        pairs = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        for key, item in pairs:
            item_weight, item_height = self._weigh(item, depth + 1)
            weight += item_weight + (1 if key is None else len(str(key)) + 4)
            height = max(height, item_height + 1)
            if weight > MAX_WORK:
                raise TemplateFailed(f"the template failed: it made a value larger than {MAX_WORK} bytes")
            if height + depth > MAX_DEPTH:
                raise TemplateFailed(f"the template failed: it made a value nested deeper than {MAX_DEPTH} levels")
        self.weighed[id(value)] = (value, weight, height)
        return weight, height


def output_for(kind: IntegrationKind, ctx: DeliveryContext) -> Any:
    """The body (or message) `kind` sends for this delivery under its template."""
    return kind.body_from_template(run(ctx.config[TEMPLATE_KEY], envelope_of(ctx)))
