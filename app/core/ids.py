"""Opaque, prefixed, time-sortable identifiers such as ``del_01JD3X5K8Q0Z7M2V9T4R6W1YBC``."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, sorts like the numbers it encodes

PREFIXES = {
    "ws": "Workspace",
    "usr": "User",
    "mem": "Membership",
    "tok": "ApiToken",
    "int": "Integration",
    "frm": "Form",
    "fin": "FormIntegration",
    "evt": "Event",
    "del": "Delivery",
    "att": "DeliveryAttempt",
}


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """48 bits of milliseconds then 80 random bits, like a ULID."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_encode(millis, 10)}{_encode(int.from_bytes(os.urandom(10), 'big'), 16)}"


# Module-level factories: migrations must be able to import a field's default by name.
def workspace_id() -> str:
    return new_id("ws")


def user_id() -> str:
    return new_id("usr")


def membership_id() -> str:
    return new_id("mem")


def token_id() -> str:
    return new_id("tok")


def integration_id() -> str:
    return new_id("int")


def form_id() -> str:
    return new_id("frm")


def form_integration_id() -> str:
    return new_id("fin")


def event_id() -> str:
    return new_id("evt")


def delivery_id() -> str:
    return new_id("del")


def attempt_id() -> str:
    return new_id("att")


def prefix_of(identifier: str) -> str | None:
    head, sep, rest = identifier.partition("_")
    if not sep or head not in PREFIXES or len(rest) != 26:
        return None
    return head
