"""The OAuth tokens of a connected integration, as kept in its encrypted secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: float  # epoch seconds; 0 when the provider gave no expiry
    extra: dict[str, Any] = field(default_factory=dict)

    def to_secrets(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_at": self.expires_at}

    @classmethod
    def from_secrets(cls, secrets: dict[str, Any]) -> TokenSet | None:
        if not secrets.get("access_token") and not secrets.get("refresh_token"):
            return None
        return cls(
            access_token=secrets.get("access_token") or "",
            refresh_token=secrets.get("refresh_token"),
            expires_at=float(secrets.get("expires_at") or 0),
        )

    def expires_within(self, seconds: float, now: float) -> bool:
        if not self.access_token:
            return True
        return self.expires_at > 0 and self.expires_at - now < seconds
