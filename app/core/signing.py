"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signature itself is the `standardwebhooks` package's: the same code receivers verify with.
What it cannot do is kept here: minting `whsec_` secrets, keys for user-supplied secrets that are
not `whsec_` base64 (their UTF-8 bytes are the key), and several signatures during a rotation.
"""

from __future__ import annotations

import base64
import binascii
import secrets as _random
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def generate_secret() -> str:
    """A new ``whsec_`` secret: standard (not urlsafe) base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key for ``secret``.

    For ``whsec_<base64>`` secrets the key is the standard-base64-decoded part after
    the prefix, as the Standard Webhooks libraries expect. A user-supplied secret
    that is not ``whsec_``-prefixed valid base64 is used as the UTF-8 bytes of the
    whole string; receivers must then use those raw bytes as their HMAC key.
    """
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">``."""
    return Webhook(secret_key_bytes(secret)).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode("utf-8"))


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures: the current secret first, then any still-in-grace old one."""
    if not secrets:
        raise ValueError("at least one secret is required to sign a webhook")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }
