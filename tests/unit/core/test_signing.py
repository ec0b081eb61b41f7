import base64
import hashlib
import hmac
import json
import re
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.core.signing import (
    generate_secret,
    secret_key_bytes,
    sign,
    signature_header,
    webhook_headers,
)

BODY = json.dumps(
    {"type": "session.completed", "timestamp": "2024-05-01T10:00:00Z", "data": {"a": 1}}
).encode()
MSG_ID = "msg_2b7QyFvYm0w3kJ1"
# 32 bytes whose standard base64 contains both '+' and '/'.
PLUS_SLASH_KEY = base64.b64decode("eF8+x+sy8wuQzQ/PNlfTiLX/Qpfy+XFv9m6bacBd3Qk=")
PLUS_SLASH_SECRET = "whsec_" + base64.b64encode(PLUS_SLASH_KEY).decode()


def now() -> int:
    return int(time.time())


def test_generate_secret_is_standard_base64_of_32_bytes() -> None:
    seen_plus_or_slash = False
    for _ in range(200):
        secret = generate_secret()
        assert secret.startswith("whsec_")
        encoded = secret.removeprefix("whsec_")
        assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", encoded)
        assert len(base64.b64decode(encoded, validate=True)) == 32
        seen_plus_or_slash |= "+" in encoded or "/" in encoded
    assert seen_plus_or_slash
    assert generate_secret() != generate_secret()


def test_official_verifier_accepts_generated_secret() -> None:
    secret = generate_secret()
    ts = now()
    assert Webhook(secret).verify(BODY, webhook_headers([secret], MSG_ID, ts, BODY)) == json.loads(BODY)


def test_headers_shape() -> None:
    headers = webhook_headers([PLUS_SLASH_SECRET], MSG_ID, 1714557600, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == "1714557600"
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", headers["webhook-signature"])


def test_signature_is_hmac_of_id_timestamp_body() -> None:
    expected = hmac.new(PLUS_SLASH_KEY, f"{MSG_ID}.1714557600.".encode() + BODY, hashlib.sha256).digest()
    assert sign(PLUS_SLASH_SECRET, MSG_ID, 1714557600, BODY) == "v1," + base64.b64encode(expected).decode()


def test_key_is_base64_decoded_part_not_string_bytes() -> None:
    assert "+" in PLUS_SLASH_SECRET and "/" in PLUS_SLASH_SECRET
    assert secret_key_bytes(PLUS_SLASH_SECRET) == PLUS_SLASH_KEY
    ts = now()
    headers = webhook_headers([PLUS_SLASH_SECRET], MSG_ID, ts, BODY)
    Webhook(PLUS_SLASH_SECRET).verify(BODY, headers)
    Webhook(PLUS_SLASH_KEY).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(PLUS_SLASH_SECRET.encode()).verify(BODY, headers)


def test_urlsafe_reading_of_the_secret_does_not_verify() -> None:
    # A urlsafe-alphabet decoder skips '+' and '/' as foreign characters and derives another key.
    encoded = PLUS_SLASH_SECRET.removeprefix("whsec_")
    urlsafe_only = encoded.rstrip("=").replace("+", "").replace("/", "")
    urlsafe_only = urlsafe_only[: len(urlsafe_only) // 4 * 4]
    urlsafe_misread = base64.urlsafe_b64decode(urlsafe_only)
    assert urlsafe_misread != PLUS_SLASH_KEY
    headers = webhook_headers([PLUS_SLASH_SECRET], MSG_ID, now(), BODY)
    Webhook(PLUS_SLASH_KEY).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(urlsafe_misread).verify(BODY, headers)


def test_rotation_header_verifies_with_either_secret() -> None:
    new, old = generate_secret(), generate_secret()
    ts = now()
    headers = webhook_headers([new, old], MSG_ID, ts, BODY)
    signatures = headers["webhook-signature"].split(" ")
    assert signatures == [sign(new, MSG_ID, ts, BODY), sign(old, MSG_ID, ts, BODY)]
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_tampering_is_detected() -> None:
    secret = generate_secret()
    ts = now()
    headers = webhook_headers([secret], MSG_ID, ts, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"1", b"2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(ts + 1)})


@pytest.mark.parametrize(
    "secret",
    ["my-shared-secret-123", "whsec_not*base64!", "whsec_abc", "plain secret with spaces", "ünïcödé-secret"],
)
def test_user_supplied_non_base64_secret_uses_utf8_bytes(secret: str) -> None:
    assert secret_key_bytes(secret) == secret.encode("utf-8")
    ts = now()
    headers = webhook_headers([secret], MSG_ID, ts, BODY)
    Webhook(secret.encode("utf-8")).verify(BODY, headers)


def test_user_supplied_whsec_base64_secret_is_decoded() -> None:
    secret = "whsec_" + base64.b64encode(b"user provided key material").decode()
    assert secret_key_bytes(secret) == b"user provided key material"
    Webhook(secret).verify(BODY, webhook_headers([secret], MSG_ID, now(), BODY))


def test_signature_header_requires_a_secret() -> None:
    with pytest.raises(ValueError):
        signature_header([], MSG_ID, now(), BODY)
