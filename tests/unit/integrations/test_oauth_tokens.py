"""TokenSet: the tokens as kept in an integration's secrets."""

from __future__ import annotations

from app.integrations.oauth_tokens import TokenSet


def test_token_set_secrets_round_trip():
    tokens = TokenSet("at", "rt", 123.5, {"scope": "x"})
    assert tokens.to_secrets() == {"access_token": "at", "refresh_token": "rt", "expires_at": 123.5}
    back = TokenSet.from_secrets({**tokens.to_secrets(), "signing_secret": "ignored"})
    assert (back.access_token, back.refresh_token, back.expires_at) == ("at", "rt", 123.5)
    assert TokenSet.from_secrets({}) is None


def test_expires_within_the_margin():
    assert not TokenSet("at", "rt", 1000.0).expires_within(60, now=900.0)
    assert TokenSet("at", "rt", 1000.0).expires_within(60, now=950.0)
    assert not TokenSet("at", "rt", 0).expires_within(60, now=1e12)  # no expiry given: assumed valid
    assert TokenSet("", "rt", 0).expires_within(60, now=0)  # only a refresh token: refresh first
