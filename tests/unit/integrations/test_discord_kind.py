from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from app.integrations.discord import DiscordKind
from tests.unit.integrations.helpers import make_ctx

URL = "https://discord.com/api/webhooks/123/abc"
kind = DiscordKind()


def message_of(payload, **kw) -> dict:
    request = kind.build_request(make_ctx({"url": URL}, payload, **kw))
    assert request.method == "POST" and request.url == URL
    return orjson.loads(request.body)


def embed_total(embed: dict) -> int:
    fields = embed.get("fields", [])
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + len(embed["footer"]["text"])
        + sum(len(f["name"]) + len(f["value"]) for f in fields)
    )


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_huge_payload_respects_every_discord_limit():
    payload = {"title": "🚀" * 1000, "description": "d" * 10_000, "url": "https://example.com/p/1"}
    payload.update({f"f{i}-" + "n" * 400: ("😀" if i % 2 else "v") * 3000 for i in range(60)})
    payload["nested"] = {"deep": "x" * 5000, "empty": ""}
    message = message_of(payload, event_type="e" * 3000, is_test=True, form_slug="f" * 3000)
    assert len(message["content"]) <= 2000
    assert message["allowed_mentions"] == {"parse": []}
    embed = message["embeds"][0]
    assert utf16(embed["title"]) <= 256
    assert utf16(embed["description"]) <= 4096
    assert utf16(embed["footer"]["text"]) <= 2048
    assert 0 < len(embed["fields"]) <= 25
    for f in embed["fields"]:
        assert 0 < utf16(f["name"]) <= 256 and 0 < utf16(f["value"]) <= 1024
    assert embed_total(embed) <= 6000
    assert (
        sum(utf16(v) for v in (embed["title"], embed["description"], embed["footer"]["text"]))
        + sum(utf16(f["name"]) + utf16(f["value"]) for f in embed["fields"])
        <= 6000
    )
    assert embed["title"].endswith("…")
    assert embed["url"] == "https://example.com/p/1"


def test_small_payload_is_kept_whole():
    message = message_of(
        {"title": "New post", "post": {"author": "ada", "votes": 3}, "flag": True, "url": "https://e.com/1"},
        is_test=True,
    )
    embed = message["embeds"][0]
    assert embed["title"] == "New post"
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [
        ("post.author", "ada"),
        ("post.votes", "3"),
        ("flag", "true"),
        ("url", "https://e.com/1"),
    ]
    assert "test" in message["content"] and "test" in embed["footer"]["text"]
    assert embed["timestamp"].startswith("2026-01-02T03:04:05")


def test_everyone_in_payload_cannot_ping():
    message = message_of({"comment": "@everyone look"})
    assert message["allowed_mentions"] == {"parse": []}


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", "//no-scheme.example"])
def test_non_http_urls_are_dropped(url):
    assert "url" not in message_of({"url": url})["embeds"][0]


def test_rate_limit_from_json_body_or_header():
    body = orjson.dumps({"message": "You are being rate limited.", "retry_after": 1.5, "global": False})
    outcome = kind.read_response(429, {"Retry-After": "2"}, body)
    assert not outcome.success and outcome.retry_after == 1.5 and outcome.retryable
    assert kind.read_response(429, {"retry-after": "4"}, b"").retry_after == 4


def test_unknown_webhook_is_gone_and_bad_body_is_final():
    gone = kind.read_response(404, {}, orjson.dumps({"message": "Unknown Webhook", "code": 10015}))
    assert gone.gone and not gone.retryable and "Unknown Webhook" in gone.error
    bad = kind.read_response(400, {}, orjson.dumps({"message": "Invalid Form Body", "code": 50035}))
    assert not bad.success and not bad.gone and not bad.retryable
    assert kind.read_response(204, {}, b"").success
    assert kind.read_response(502, {}, b"").retryable


def test_a_test_message_names_the_workspace_in_content_and_footer():
    ctx = replace(make_ctx({"url": URL}, kind.sample_payload("integration.test"), is_test=True,
                           event_type="integration.test"), workspace_name="Acme **Labs**")
    message = orjson.loads(kind.build_request(ctx).body)
    # Markdown in the name is shown as typed in the content; the footer is plain text.
    assert message["content"] == "**integration.test** — test delivery from workspace Acme \\*\\*Labs\\*\\* (acme)"
    footer = message["embeds"][0]["footer"]["text"]
    assert footer == "Hookyard · integration.test · test delivery from Acme **Labs** (acme)"
    bare = orjson.loads(kind.build_request(make_ctx({"url": URL}, {}, is_test=True)).body)
    assert bare["content"].endswith("test delivery from workspace acme")
    assert bare["embeds"][0]["footer"]["text"].endswith("test delivery from acme")
    real = orjson.loads(kind.build_request(replace(ctx, is_test=False)).body)
    assert real["content"] == "**integration.test**" and "Acme" not in orjson.dumps(real).decode()
