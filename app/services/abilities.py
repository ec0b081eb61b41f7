"""What a credential may do: the abilities API tokens and portal sessions carry."""

from __future__ import annotations

# What an ordinary token may carry.
ABILITIES = (
    "integrations:read",
    "integrations:write",
    "forms:write",
    "events:publish",
    "deliveries:read",
    "deliveries:write",
    "tokens:write",
)
# Runs the instance: sets and changes workspace plans. Only `hookyard bootstrap` mints it (the first
# token and `--new-token`); a token can pass it on only when it has it itself.
OPERATOR_ABILITY = "instance:operator"
ALL_ABILITIES = (*ABILITIES, OPERATOR_ABILITY)

# What a portal session may carry: never tokens:write (no tokens or sessions from a browser) nor the
# operator's ability; members and plans are refused to sessions whatever they carry.
SESSION_ABILITIES = tuple(a for a in ABILITIES if a != "tokens:write")
DEFAULT_SESSION_ABILITIES = ("integrations:read", "integrations:write", "deliveries:read", "deliveries:write")
