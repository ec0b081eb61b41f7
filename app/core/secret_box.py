"""Encryption at rest for integration secrets (Fernet, keyed from HOOKYARD_SECRET_KEY)."""

from __future__ import annotations

import base64
import hashlib
import secrets as _secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from app.config import Settings

KEY_CHANGED = "stored secrets cannot be decrypted: HOOKYARD_SECRET_KEY changed?"


def ensure_secret_key(settings: Settings) -> str:
    """The configured key, or one generated once into the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = _secrets.token_urlsafe(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _fernet_for(key: str) -> Fernet:
    # Any string works as a key: it is stretched to the 32 bytes Fernet needs.
    digest = hashlib.sha256(key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Encrypts and decrypts the JSON secrets of integrations with one key.

    The send path decrypts the same few integrations over and over, so `open_cached` keeps the
    plaintext of the last thousand or so ciphertexts in this box (one box per process runtime).
    """

    def __init__(self, key: str):
        self.key = key
        self._fernet = _fernet_for(key)
        self._plaintext = lru_cache(maxsize=1024)(self._decrypt)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(ensure_secret_key(settings))

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def open(self, token: str | None) -> dict[str, Any]:
        return orjson.loads(self._decrypt(token)) if token else {}

    def open_cached(self, token: str | None) -> dict[str, Any]:
        """`open` for the send path; each call still gets its own dict (callers may change it)."""
        return orjson.loads(self._plaintext(token)) if token else {}

    def _decrypt(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken as exc:
            raise RuntimeError(KEY_CHANGED) from exc
