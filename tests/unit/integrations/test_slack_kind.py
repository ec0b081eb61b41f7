from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from slack_sdk.models.blocks import Block

from app.config import Settings
from app.core.http import mask_url
from app.integrations.registry import get_kind
from app.integrations.slack import SlackKind
from tests.unit.integrations.helpers import make_ctx

URL = "https://hooks.slack.com/services/T000/B000/XXXX"
kind = SlackKind()


def blocks_of(payload, **kw) -> dict:
    request = kind.build_request(make_ctx({"url": URL}, payload, **kw))
    assert request.method == "POST" and request.url == URL
    assert request.headers["content-type"] == "application/json"
    return orjson.loads(request.body)


def assert_valid_slack(message: dict) -> None:
    assert 0 < len(message["text"]) <= 3000
    assert 0 < len(message["blocks"]) <= 50
    for raw in message["blocks"]:
        parsed = Block.parse(raw)
        assert parsed is not None, raw
        parsed.validate_json()  # raises SlackObjectFormationError on any limit violation
        for element in raw.get("elements", []) if raw["type"] == "actions" else []:
            assert len(element["text"]["text"]) <= 75 and len(element["url"]) <= 3000


def test_registered():
    assert isinstance(get_kind("slack"), SlackKind)


def test_validate_accepts_url_and_rejects_unknown_fields():
    settings = Settings()
    ok = kind.validate({"url": URL}, {}, existing_secrets=None, settings=settings)
    # The URL is the credential: kept with the secrets, the config holds only its masked form.
    assert ok.errors == [] and ok.config == {"url": mask_url(URL)} and ok.secrets == {"url": URL}
    bad = kind.validate({"url": URL, "channel": "#x"}, {"token": "t"}, existing_secrets=None, settings=settings)
    assert {(e.field, e.code) for e in bad.errors} == {
        ("config.channel", "UNKNOWN_FIELD"),
        ("secrets.token", "UNKNOWN_FIELD"),
    }
    assert kind.validate({}, {}, existing_secrets=None, settings=settings).errors[0].field == "config.url"
    insecure = kind.validate({"url": "http://hooks.slack.com/x"}, {}, existing_secrets=None, settings=settings)
    assert insecure.errors[0].code == "INSECURE_URL"


def test_typical_message_has_header_fields_button_and_test_context():
    payload = kind.sample_payload("post.created")
    message = blocks_of(payload, is_test=True, form_slug="feedback")
    assert_valid_slack(message)
    types = [b["type"] for b in message["blocks"]]
    assert types == ["header", "context", "section", "actions"]
    assert message["blocks"][0]["text"]["text"] == "Sample submission"
    assert "Test delivery" in orjson.dumps(message["blocks"][1]).decode()
    texts = [f["text"] for f in message["blocks"][2]["fields"]]
    assert "*fields.email*\nada@example.com" in texts
    assert message["blocks"][3]["elements"][0]["url"] == "https://example.com/samples/1"


def test_nested_url_and_no_title_uses_event_type():
    message = blocks_of({"post": {"title": "Hi", "url": "https://x.example/p/1"}})
    assert_valid_slack(message)
    assert message["blocks"][0]["text"]["text"] == "session.completed"
    assert message["blocks"][-1]["elements"][0]["url"] == "https://x.example/p/1"
    assert not any("Test delivery" in orjson.dumps(b).decode() for b in message["blocks"])


def test_huge_payload_stays_inside_slack_limits():
    payload = {
        "title": "T" * 500,
        "url": "https://e.com/" + "a" * 4000,
        "nested": {f"k{i}": "&<>" * 1000 for i in range(20)},
    }
    payload.update({f"field_{i}_" + "n" * 300: "v" * 5000 for i in range(30)})
    message = blocks_of(payload, event_type="x" * 200)
    assert_valid_slack(message)
    assert len(message["blocks"][0]["text"]["text"]) == 150
    section = next(b for b in message["blocks"] if b["type"] == "section")
    assert len(section["fields"]) == 10
    assert all(len(f["text"]) <= 2000 for f in section["fields"])
    assert not any(b["type"] == "actions" for b in message["blocks"])  # url over 3000 characters


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x.example/f", "not a url"])
def test_only_http_urls_become_buttons(url):
    message = blocks_of({"url": url, "a": 1})
    assert not any(b["type"] == "actions" for b in message["blocks"])


def test_mentions_are_escaped():
    message = blocks_of({"comment": "<!channel> hi & <@U123>"})
    text = message["blocks"][2]["fields"][0]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; hi &amp; &lt;@U123&gt;" in text


def test_non_object_payload():
    message = blocks_of(["a", 1])
    assert_valid_slack(message)


@pytest.mark.parametrize(
    ("status", "body", "gone", "retryable"),
    [
        (400, b"invalid_payload", False, False),
        (403, b"action_prohibited", False, True),
        (404, b"no_service", True, False),
        (410, b"channel_is_archived", True, False),
        (500, b"rollup_error", False, True),
    ],
)
def test_read_response_errors(status, body, gone, retryable):
    outcome = kind.read_response(status, {}, body)
    assert not outcome.success and outcome.gone is gone and outcome.retryable is retryable
    assert body.decode() in outcome.error


def test_read_response_success_and_rate_limit():
    assert kind.read_response(200, {}, b"ok").success
    limited = kind.read_response(429, {"Retry-After": "30"}, b"rate_limited")
    assert not limited.success and limited.retry_after == 30 and limited.retryable


def test_a_test_message_names_the_workspace_it_comes_from():
    ctx = replace(make_ctx({"url": URL}, kind.sample_payload("integration.test"), is_test=True,
                           event_type="integration.test"), workspace_name="Acme <Labs> & Co")
    message = orjson.loads(kind.build_request(ctx).body)
    assert_valid_slack(message)
    # The notification text and the context block both say which workspace (name and slug) sent it.
    assert message["text"].startswith("[test from Acme &lt;Labs&gt; &amp; Co (acme)] integration.test")
    context = [e["text"] for e in message["blocks"][1]["elements"]]
    assert context[-1] == ":test_tube: Test delivery from Hookyard workspace Acme &lt;Labs&gt; &amp; Co (acme)"
    # Without a name (or when it is the slug) the slug alone; a real event names no workspace.
    bare = orjson.loads(kind.build_request(make_ctx({"url": URL}, {}, is_test=True)).body)
    assert bare["text"].startswith("[test from acme] ")
    assert bare["blocks"][1]["elements"][-1]["text"].endswith("workspace acme")
    real = orjson.loads(kind.build_request(replace(ctx, is_test=False)).body)
    assert "Acme" not in orjson.dumps(real).decode()
