"""Pipedrive deliveries against the fake provider, over real HTTP, and its config."""

from __future__ import annotations

import base64

from app.integrations.pipedrive import PipedriveKind
from tests.unit.integrations.helpers import connected, errors_of, make_ctx, valid_config

pipedrive = PipedriveKind()


async def test_pipedrive_person_and_deal(fake, provider_settings, exchange):
    config = valid_config(
        pipedrive,
        {"mapping": {"name": "fields.name", "email": "fields.email"}, "deal_title": "title", "note": True},
        provider_settings,
    )
    secrets = connected(fake, "pipedrive")
    payload = pipedrive.sample_payload("session.completed")
    outcome = await pipedrive.deliver(make_ctx(config, payload, secrets=secrets, settings=provider_settings), exchange)
    assert outcome.success, outcome.error
    search, person, deal, note = fake.requests
    assert (search.method, search.path) == ("GET", "/pipedrive/api/v2/persons/search")
    assert search.query == {"term": "ada@example.com", "fields": "email", "exact_match": "true", "limit": "1"}
    assert (person.method, person.path) == ("POST", "/pipedrive/api/v2/persons")
    assert person.json == {
        "name": "Ada Lovelace",
        "emails": [{"value": "ada@example.com", "primary": True, "label": "work"}],
    }
    person_id = next(iter(fake.persons))
    assert (deal.path, deal.json) == ("/pipedrive/api/v2/deals", {"title": "Sample submission", "person_id": person_id})
    assert note.path == "/pipedrive/v1/notes" and note.json["person_id"] == person_id
    assert note.json["content"].startswith("<b>session.completed</b>")
    assert all(r.authorization == f"Bearer {secrets['access_token']}" for r in fake.requests)

    fake.requests.clear()
    again = await pipedrive.deliver(make_ctx(config, payload, secrets=secrets, settings=provider_settings), exchange)
    assert again.success and len(fake.persons) == 1  # found by email, not duplicated
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["search", "deals", "notes"]
    assert len(fake.deals) == 2


async def test_pipedrive_refresh_uses_basic_auth(fake, provider_settings, exchange):
    config = valid_config(pipedrive, {}, provider_settings)
    secrets = connected(fake, "pipedrive", expires_in=0)
    ctx = make_ctx(config, pipedrive.sample_payload("x"), secrets=secrets, settings=provider_settings)
    outcome = await pipedrive.deliver(ctx, exchange)
    assert outcome.success, outcome.error
    token_call = fake.requests[0]
    assert token_call.path == "/pipedrive/oauth/token"
    assert token_call.authorization == "Basic " + base64.b64encode(b"pd-client:pd-secret").decode()
    assert token_call.form == {"grant_type": "refresh_token", "refresh_token": secrets["refresh_token"]}
    assert ctx.secrets_changed and fake.requests[1].authorization == f"Bearer {ctx.secrets['access_token']}"
    # default config: person only
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests[1:]] == ["search", "persons"]


async def test_pipedrive_error_message_is_reported(fake, provider_settings, exchange):
    config = valid_config(pipedrive, {}, provider_settings)
    secrets = connected(fake, "pipedrive")
    fake.answer_next(
        "/pipedrive/api/v2/persons", 400, body={"success": False, "error": "Name is too long", "error_info": "see docs"}
    )
    outcome = await pipedrive.deliver(
        make_ctx(config, pipedrive.sample_payload("x"), secrets=secrets, settings=provider_settings), exchange
    )
    assert not outcome.retryable and "Name is too long" in outcome.error


def test_pipedrive_config_errors_and_defaults():
    errors, _ = errors_of(
        pipedrive, {"mapping": {"email": "fields.email", "org": "x"}, "deal_title": "a b", "note": "yes"}
    )
    assert errors == {
        ("config.mapping.name", "REQUIRED"),
        ("config.mapping.org", "INVALID"),
        ("config.deal_title", "INVALID_PATH"),
        ("config.note", "INVALID"),
    }
    ok, validated = errors_of(pipedrive, {})
    assert ok == set()
    assert validated.config == {
        "mapping": {"name": "fields.name", "email": "fields.email"},
        "deal_title": None,
        "note": False,
    }
    assert errors_of(pipedrive, validated.config)[0] == set()  # its own output validates again
