"""Encryption at rest for integration secrets (Fernet, keyed from HOOKYARD_SECRET_KEY)."""

from __future__ import annotations

import base64
import hashlib
import secrets as _secrets
from functools import lru_cache
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

from app.config import Settings, get_settings

_box: tuple[str, Fernet] | None = None


def _fernet_for(key: str) -> Fernet:
    # Any string works as a key: it is stretched to the 32 bytes Fernet needs.
    digest = hashlib.sha256(key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


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


def _fernet() -> Fernet:
    global _box
    key = ensure_secret_key(get_settings())
    if _box is None or _box[0] != key:
        _box = (key, _fernet_for(key))
    return _box[1]


def encrypt_json(value: dict) -> str:
    return _fernet().encrypt(orjson.dumps(value)).decode()


def decrypt_json(token: str | None) -> dict:
    if not token:
        return {}
    try:
        return orjson.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise RuntimeError("stored secrets cannot be decrypted: HOOKYARD_SECRET_KEY changed?") from exc


@lru_cache(maxsize=1024)
def _plaintext(token: str, key: str) -> bytes:
    try:
        return _fernet_for(key).decrypt(token.encode())
    except InvalidToken as exc:
        raise RuntimeError("stored secrets cannot be decrypted: HOOKYARD_SECRET_KEY changed?") from exc


def decrypt_json_cached(token: str | None) -> dict:
    """`decrypt_json` for the send path: the plaintext of the last thousand or so tokens stays in this
    process's memory, so a busy integration is not decrypted once per delivery. Each call gets its own
    dict (callers may change it)."""
    if not token:
        return {}
    return orjson.loads(_plaintext(token, ensure_secret_key(get_settings())))
