"""The signed, expiring `state` of the connect flow."""

from __future__ import annotations

import base64
import re
import time

import pytest

from app.integrations.oauth_state import OAuthStateError, make_state, read_state, state_nonce

KEY = b"k" * 32


def test_state_round_trip_and_nonce():
    state = make_state({"workspace": "acme", "type": "HUBSPOT"}, KEY, 600)
    assert read_state(state, KEY, time.time()) == {"workspace": "acme", "type": "HUBSPOT"}
    other = make_state({"workspace": "acme", "type": "HUBSPOT"}, KEY, 600)
    assert state_nonce(state) != state_nonce(other) and len(state_nonce(state)) >= 16
    assert re.fullmatch(r"[A-Za-z0-9_\-.]+", state)  # safe in a query string unescaped


def test_state_expires():
    state = make_state({"a": 1}, KEY, 600, now=1000.0)
    assert read_state(state, KEY, 1599.0) == {"a": 1}
    with pytest.raises(OAuthStateError, match="expired"):
        read_state(state, KEY, 1600.0)


def test_state_rejects_tampering_and_wrong_key():
    state = make_state({"workspace": "acme"}, KEY, 600)
    body, sig = state.split(".")
    forged_body = (
        base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).replace(b"acme", b"evil"))
        .rstrip(b"=")
        .decode()
    )
    for bad in (f"{forged_body}.{sig}", f"{body}.{sig[:-2]}AA", state + "x"):
        with pytest.raises(OAuthStateError):
            read_state(bad, KEY, time.time())
    with pytest.raises(OAuthStateError):
        read_state(state, b"other-key" * 4, time.time())
    for junk in ("", "abc", "a.b.c", "!!!.???"):
        with pytest.raises(OAuthStateError):
            read_state(junk, KEY, time.time())
