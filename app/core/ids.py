"""Opaque, prefixed, time-sortable identifiers such as ``del_01JD3X5K8Q0Z7M2V9T4R6W1YBC``."""

from __future__ import annotations

import os
import time
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, sorts like the numbers it encodes

PREFIXES = {
    "ws": "Workspace",
    "usr": "User",
    "mem": "Membership",
    "tok": "ApiToken",
    "pss": "PortalSession",
    "int": "Integration",
    "frm": "Form",
    "fin": "FormIntegration",
    "evt": "Event",
    "etp": "EventType",
    "del": "Delivery",
    "att": "DeliveryAttempt",
}


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


# The last id's time and random part: ids made in the same millisecond by this process follow each other
# (monotonic ULIDs), so ordered delivery can go by id for events published in quick succession.
_last = [0, 0]
_RANDOM_MAX = (1 << 80) - 1


# Every pair of characters (10 bits): an id's 26 characters in 13 look-ups, about 0.9 us against 2.1 us
# for `_encode` character by character (base64.b32encode, pure Python, is no faster).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_PAIR_SHIFTS = (120, 110, 100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 0)


def _encode_id(millis: int, random_part: int) -> str:
    """`_encode(millis, 10) + _encode(random_part, 16)`."""
    value = (millis << 80) | random_part
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


def new_id(prefix: str) -> str:
    """48 bits of milliseconds then 80 random bits, like a ULID; increasing within this process."""
    millis = time.time_ns() // 1_000_000
    random_part = int.from_bytes(os.urandom(10), "big")
    if millis <= _last[0]:
        millis = _last[0]
        random_part = _last[1] + 1
        if random_part > _RANDOM_MAX:  # 2**80 ids in one millisecond: borrow the next one
            millis, random_part = millis + 1, 0
    _last[0], _last[1] = millis, random_part
    return f"{prefix}_{_encode_id(millis, random_part)}"


# Module-level factories: migrations must be able to import a field's default by name.
def workspace_id() -> str:
    return new_id("ws")


def user_id() -> str:
    return new_id("usr")


def membership_id() -> str:
    return new_id("mem")


def token_id() -> str:
    return new_id("tok")


def portal_session_id() -> str:
    return new_id("pss")


def integration_id() -> str:
    return new_id("int")


def form_id() -> str:
    return new_id("frm")


def form_integration_id() -> str:
    return new_id("fin")


def event_id() -> str:
    return new_id("evt")


def event_type_id() -> str:
    return new_id("etp")


def delivery_id() -> str:
    return new_id("del")


def attempt_id() -> str:
    return new_id("att")


def prefix_of(identifier: str) -> str | None:
    head, sep, rest = identifier.partition("_")
    if not sep or head not in PREFIXES or len(rest) != 26:
        return None
    return head


_MAX_MILLIS = (1 << 50) - 1  # ten base-32 characters


def time_bound(prefix: str, moment: datetime, *, upper: bool) -> str:
    """The least (`upper` false) or greatest id with `prefix` that `new_id` can make at `moment`'s
    millisecond: ids sort by the time they were made, so a time range is also an id range."""
    millis = min(max(int(moment.timestamp() * 1000), 0), _MAX_MILLIS)
    return f"{prefix}_{_encode(millis, 10)}{(_ALPHABET[-1] if upper else _ALPHABET[0]) * 16}"
