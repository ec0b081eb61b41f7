"""Payload templates (app.integrations.templates): reshaping, the sandbox's limits, save-time errors."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from standardwebhooks import Webhook

from app.core import signing
from app.core.errors import CommonErrorCode, IntegrationErrorCode
from app.integrations import templates
from app.integrations.discord import DiscordKind
from app.integrations.hubspot import HubSpotKind
from app.integrations.slack import SlackKind
from app.integrations.templates import (
    MAX_OUTPUT_BYTES,
    MAX_SOURCE_BYTES,
    TemplateFailed,
    envelope_of,
    run,
    split_template,
    validate_template,
    with_template,
)
from app.integrations.webhook import WebhookKind
from tests.unit.integrations.helpers import make_ctx

PAYLOAD = {"email": "ada@example.com", "name": "Ada", "items": [1, 2, 3]}
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXX"
DISCORD_URL = "https://discord.com/api/webhooks/1/abc"


def env(payload=PAYLOAD, **kw):
    return envelope_of(make_ctx({}, payload, form_slug="contact", **kw))


def codes(errors):
    return [(e.field, e.code) for e in errors]


# ---------------------------------------------------------------- reshaping


def test_envelope_uses_the_webhook_body_names():
    data = env()
    assert data == {
        "type": "session.completed", "id": "del_1", "timestamp": "2026-01-02T03:04:05Z", "data": PAYLOAD,
        "test": False, "workspace": {"slug": "acme", "name": "acme"}, "form": {"slug": "contact"},
    }
    assert envelope_of(make_ctx({}, PAYLOAD))["form"] is None


def test_reshapes_json():
    out = run("{text: join(' ', ['New', type, 'from', data.email]), count: length(data.items), "
              "form: form.slug}", env())
    assert out == {"text": "New session.completed from ada@example.com", "count": 3, "form": "contact"}


def test_missing_values_can_default():
    assert run("{who: data.phone || 'unknown'}", env()) == {"who": "unknown"}


def test_webhook_body_is_the_output_and_is_signed():
    secret = signing.generate_secret()
    ctx = replace(make_ctx({"url": "https://example.com/hook", "template": "{email: data.email, kind: type}"},
                           PAYLOAD, secrets={"signing_secret": secret}), timestamp=datetime.now(UTC))
    request = WebhookKind().build_request(ctx)
    assert orjson.loads(request.body) == {"email": "ada@example.com", "kind": "session.completed"}
    # The signature covers the reshaped body, verified with the reference implementation.
    verified = Webhook(secret).verify(request.body, {k: v for k, v in request.headers.items()
                                                     if k.startswith("webhook-")})
    assert verified == {"email": "ada@example.com", "kind": "session.completed"}


def test_webhook_without_template_is_unchanged():
    ctx = make_ctx({"url": "https://example.com/hook"}, PAYLOAD, secrets={"signing_secret": signing.generate_secret()})
    body = orjson.loads(WebhookKind().build_request(ctx).body)
    assert body == {"type": "session.completed", "timestamp": "2026-01-02T03:04:05Z", "data": PAYLOAD}


@pytest.mark.parametrize("source", ["data.email", "length(data.items)", "`true`"])
def test_webhook_output_must_be_object_or_array(source):
    ctx = make_ctx({"url": "https://example.com/hook", "template": source}, PAYLOAD,
                   secrets={"signing_secret": signing.generate_secret()})
    with pytest.raises(TemplateFailed, match="must answer a JSON object or array"):
        WebhookKind().build_request(ctx)


def test_slack_string_is_escaped_text_and_object_is_the_message():
    kind = SlackKind()
    ctx = make_ctx({"url": "masked", "template": "join(' ', ['<!channel>', data.name])"}, PAYLOAD,
                   secrets={"url": SLACK_URL})
    request = kind.build_request(ctx)
    assert request.url == SLACK_URL
    assert orjson.loads(request.body) == {"text": "&lt;!channel&gt; Ada"}
    ctx.config["template"] = "{text: data.name, blocks: [{type: 'divider'}]}"
    assert orjson.loads(kind.build_request(ctx).body) == {"text": "Ada", "blocks": [{"type": "divider"}]}
    ctx.config["template"] = "data.items"
    with pytest.raises(TemplateFailed, match="Slack template must answer a string"):
        kind.build_request(ctx)


def test_discord_keeps_mentions_off():
    kind = DiscordKind()
    ctx = make_ctx({"url": "masked", "template": "join('', ['@everyone ', data.name])"}, PAYLOAD,
                   secrets={"url": DISCORD_URL})
    assert orjson.loads(kind.build_request(ctx).body) == {"content": "@everyone Ada",
                                                          "allowed_mentions": {"parse": []}}
    ctx.config["template"] = "{content: data.name, allowed_mentions: {parse: ['users']}}"
    assert orjson.loads(kind.build_request(ctx).body)["allowed_mentions"] == {"parse": ["users"]}


async def test_a_failing_template_fails_the_delivery_without_sending():
    class NoExchange:
        async def send(self, request):
            raise AssertionError("nothing may be sent")

    ctx = make_ctx({"url": "https://example.com/hook", "template": "{email: data.missing.email}"}, PAYLOAD,
                   secrets={"signing_secret": signing.generate_secret()})
    ctx.config["template"] = "join(' ', [data.missing])"
    outcome = await WebhookKind().deliver(ctx, NoExchange())
    assert not outcome.success and not outcome.retryable
    assert outcome.error.startswith("the template failed: In function join()")


def test_null_output_is_a_failure():
    with pytest.raises(TemplateFailed, match="answered null"):
        run("data.emial", env())


# ---------------------------------------------------------------- save time


@pytest.mark.parametrize("source, fragment", [
    ("data.", "is not a valid JMESPath expression"),
    ("join(' ', [type", "Incomplete expression"),
    ("`{bad", "Unclosed ` delimiter"),
    ("exec(@)", "calls exec(), which is not a JMESPath function"),
    ("join(' ')", "calls join() with 1 argument(s); it takes 2"),
    ("{{ data.email }}", "is not a valid JMESPath expression"),
])
def test_syntax_errors_are_field_errors(source, fragment):
    errors = validate_template(source)
    assert codes(errors) == [("config.template", IntegrationErrorCode.INVALID_TEMPLATE)]
    assert fragment in errors[0].message


@pytest.mark.parametrize("value", [42, {"engine": "jinja"}, "", "   "])
def test_not_an_expression(value):
    assert codes(validate_template(value)) == [("config.template", IntegrationErrorCode.INVALID_TEMPLATE)]


def test_source_size_limit():
    source = "{a: '" + "x" * MAX_SOURCE_BYTES + "'}"
    assert codes(validate_template(source)) == [("config.template", CommonErrorCode.TOO_LONG)]


def test_expression_depth_limit():
    source = "@" + "|{a: @}" * 80
    errors = validate_template(source)
    assert errors and "nested too deeply" in errors[0].message


def test_split_template():
    rest, template, errors = split_template(WebhookKind(), {"url": "u", "template": "data"})
    assert (rest, template, errors) == ({"url": "u"}, "data", [])
    assert with_template(rest, template) == {"url": "u", "template": "data"}
    assert split_template(WebhookKind(), {"url": "u", "template": None}) == ({"url": "u"}, None, [])
    assert with_template({"url": "u"}, None) == {"url": "u"}
    _, _, errors = split_template(HubSpotKind(), {"template": "data"})
    assert codes(errors) == [("config.template", CommonErrorCode.NOT_SUPPORTED)]
    _, _, errors = split_template(SlackKind(), {"template": "data."})
    assert codes(errors) == [("config.template", IntegrationErrorCode.INVALID_TEMPLATE)]


# ---------------------------------------------------------------- no code execution


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "__import__('os').system('id')",
    "{% for x in data %}{{ x }}{% endfor %}",
])
def test_code_is_refused(source):
    assert codes(validate_template(source)) == [("config.template", IntegrationErrorCode.INVALID_TEMPLATE)]


def test_dunder_names_are_only_keys():
    """A field name is a key lookup in the JSON, never an attribute: Python's internals are out of reach."""
    data = env({"__class__": "just a key"})
    assert run("{a: data.__class__, b: data.__dict__, c: type.__class__, d: @.__globals__, e: ''.__class__}",
               data) == {"a": "just a key", "b": None, "c": None, "d": None, "e": None}


# ---------------------------------------------------------------- limits at run time


def test_output_size_limit():
    payload = {"text": "x" * 100_000}
    assert run("{a: data.text}", env(payload))
    with pytest.raises(TemplateFailed, match=f"at most {MAX_OUTPUT_BYTES} may be sent"):
        run("[data.text, data.text, data.text]", env(payload))


@pytest.mark.parametrize("source", [
    "@" + "|{a: @, b: @}" * 40,  # doubles the (shared) value each step
    "data.items" + "|[@, @][]" * 40,  # doubles a real list each step
    "to_string(@)" + "|join('', [@, @])" * 40,  # doubles a string each step
])
def test_values_that_double_are_stopped(source):
    started = time.perf_counter()
    with pytest.raises(TemplateFailed, match="larger than|longer than"):
        run(source, env())
    assert time.perf_counter() - started < 1


def test_comparing_huge_shared_values_is_stopped_early():
    half = "@" + "|{a: @, b: @}" * 28
    with pytest.raises(TemplateFailed, match="larger than"):
        run(f"({half}) == ({half})", env())


def test_join_refuses_before_joining():
    with pytest.raises(TemplateFailed, match=r"join\(\) would make a string"):
        run("join(join('', [to_string(@), to_string(@), to_string(@)]), data.bulk)", env({"bulk": ["a"] * 2000}))


def test_deep_values_are_refused():
    with pytest.raises(TemplateFailed, match="nested deeper than"):
        run("`" + "[" * 200 + "]" * 200 + "`", env())


def test_step_limit(monkeypatch):
    monkeypatch.setattr(templates, "MAX_STEPS", 50)
    assert run("data.items[*].to_string(@)", env()) == ["1", "2", "3"]
    with pytest.raises(TemplateFailed, match="more than 50 steps"):
        run("data.items[*].[to_string(@), to_string(@), to_string(@), to_string(@), to_string(@)]",
            env({"items": list(range(100))}))


def test_time_limit(monkeypatch):
    monkeypatch.setattr(templates, "TIME_LIMIT", 0.0)
    with pytest.raises(TemplateFailed, match="ran longer than"):
        run("data.items[*].to_string(@)", env({"items": list(range(1000))}))


def test_runtime_errors_are_messages():
    with pytest.raises(TemplateFailed, match="the template failed: .*sum"):
        run("sum(data.name)", env())
