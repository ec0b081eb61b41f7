"""Reading what the server stored, the way only the server can: with its secret key."""

from __future__ import annotations

from app.core.secret_box import SecretBox

TEST_SECRET_KEY = "test-secret-key-not-for-production"


def stored_secrets(ciphertext: str | None) -> dict:
    return SecretBox(TEST_SECRET_KEY).open(ciphertext)
