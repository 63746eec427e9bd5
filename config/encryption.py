"""Personal data encrypted at rest (AES-256-GCM) and found again by exact value through keyed blind indexes.

Keys come from `ENCRYPTION_KEYS` (or `ENCRYPTION_KEYS_FILE`): 32-byte keys, base64, newest first. The newest
encrypts; every key listed decrypts, so rows written under an older key still read while
`manage.py rotate_encryption_key` re-encrypts them. A stored value is `enc1:<key id>:<base64url(nonce ‖
ciphertext ‖ tag)>`; the key id is the first 8 hex digits of the key's SHA-256 (never the key), and the
additional authenticated data is the column (`app_label.model.field`), so a value copied to another column or
row kind does not decrypt there. The empty string and NULL are stored as they are (nothing to hide, and
"is it set?" stays a plain query).

Exact search (the admin's search by e-mail, risk velocity by e-mail or IP) goes through a blind index: an
HMAC-SHA256 of the normalised value under its own key (`BLIND_INDEX_KEY`), stored beside the ciphertext.
Equal values give equal indexes; the index reveals nothing else without the key.

`EncryptedTextField` and `EncryptedJSONField` are the model fields. A value that does not start with `enc1:`
(a row written before its column was encrypted) reads as it is, and is encrypted the next time it is saved or
by the rotation command, which also moves rows to the newest key.
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "enc1"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce


class DecryptionError(Exception):
    """A stored value that no listed key opens (tampered, or its key was removed from ENCRYPTION_KEYS)."""


def _b64decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded.encode()) if "-" in value or "_" in value else base64.b64decode(padded)


def parse_key(text: str) -> bytes:
    """A key as configured (standard or URL-safe base64 of 32 bytes).

    :raises ImproperlyConfigured: not base64, or not 32 bytes.
    """
    try:
        key = _b64decode(text.strip())
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured("An encryption key is not base64 (32 random bytes, base64-encoded).") from exc
    if len(key) != KEY_BYTES:
        raise ImproperlyConfigured(f"An encryption key must be {KEY_BYTES} bytes (base64 of {KEY_BYTES} bytes).")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def derived_key(secret: str, *, purpose: str) -> str:
    """A key derived from another secret (DEBUG only: `make run` and the tests run without configuring keys)."""
    return base64.b64encode(hashlib.sha256(f"{purpose}:{secret}".encode()).digest()).decode()


def new_key() -> str:
    """A fresh random key, base64 (what `ENCRYPTION_KEYS` and `BLIND_INDEX_KEY` take)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True)
class Keyring:
    """The configured keys, newest first."""

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ImproperlyConfigured("ENCRYPTION_KEYS lists no key.")
        ids = [key_id(key) for key in self.keys]
        if len(set(ids)) != len(ids):
            raise ImproperlyConfigured("ENCRYPTION_KEYS lists the same key twice.")

    @property
    def current_id(self) -> str:
        return key_id(self.keys[0])

    def _by_id(self, kid: str) -> bytes:
        for key in self.keys:
            if key_id(key) == kid:
                return key
        raise DecryptionError(f"No key {kid} in ENCRYPTION_KEYS (was it removed before rotating?)")

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[0]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{PREFIX}:{self.current_id}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def decrypt(self, token: str, *, context: str) -> str:
        """:raises DecryptionError: not a token of ours, an unknown key, or tampered."""
        try:
            prefix, kid, body = token.split(":", 2)
            raw = _b64decode(body)
        except (ValueError, binascii.Error) as exc:
            raise DecryptionError("Not an encrypted value") from exc
        if prefix != PREFIX or len(raw) <= NONCE_BYTES:
            raise DecryptionError("Not an encrypted value")
        try:
            return AESGCM(self._by_id(kid)).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError(f"A value under key {kid} does not decrypt (tampered, or another column's)") from exc

    def is_current(self, stored: str | None) -> bool:
        """Whether a stored value needs nothing from the rotation (empty, or under the newest key)."""
        return not stored or stored.startswith(f"{PREFIX}:{self.current_id}:")


@lru_cache(maxsize=4)
def _keyring(keys: tuple[str, ...]) -> Keyring:
    return Keyring(tuple(parse_key(key) for key in keys))


def keyring() -> Keyring:
    """The keyring of the settings (cached per configuration, so tests may change the settings)."""
    return _keyring(tuple(settings.ENCRYPTION_KEYS))


def is_encrypted(stored: Any) -> bool:
    return isinstance(stored, str) and stored.startswith(f"{PREFIX}:")


# --- blind indexes ------------------------------------------------------------------------------------
def normalise_email(value: str) -> str:
    return value.strip().lower()


def normalise_ip(value: str) -> str:
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return value.strip().lower()


@lru_cache(maxsize=4)
def _index_key(text: str) -> bytes:
    return parse_key(text)


def blind_index(value: str | None, *, purpose: str) -> str:
    """The keyed index of a value for exact search ("" for an empty value: nothing to find)."""
    if not value:
        return ""
    normalised = normalise_email(value) if purpose == "email" else normalise_ip(value) if purpose == "ip" else value
    digest = hmac.new(_index_key(settings.BLIND_INDEX_KEY), f"{purpose}:{normalised}".encode(), hashlib.sha256)
    return digest.hexdigest()


def email_index(value: str | None) -> str:
    return blind_index(value, purpose="email")


def ip_index(value: str | None) -> str:
    return blind_index(value, purpose="ip")


# --- model fields -------------------------------------------------------------------------------------
class EncryptedMixin:
    """What the encrypted fields share: the column's context (AAD) and the raw-value helpers of the rotation."""

    model: type[models.Model]
    name: str

    @property
    def context(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    def seal(self, plaintext: str) -> str:
        return keyring().encrypt(plaintext, context=self.context)

    def open(self, stored: str) -> str:
        return keyring().decrypt(stored, context=self.context)


class EncryptedTextField(EncryptedMixin, models.TextField):
    """Text encrypted at rest. Only `isnull` and the empty string can be queried: search by a blind index."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None or not is_encrypted(value):
            return value
        return self.open(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "" or is_encrypted(value):
            return value
        return self.seal(str(value))


class EncryptedJSONField(EncryptedMixin, models.TextField):
    """A JSON value encrypted at rest (its JSON text sealed). NULL stays NULL."""

    # django-stubs would type the attribute as the TextField's str; it holds any JSON value.
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        text = self.open(value) if is_encrypted(value) else value
        return json.loads(text) if isinstance(text, str) and text else text

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not is_encrypted(value):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return self.seal(json.dumps(value, separators=(",", ":"), sort_keys=True, default=str))

    def value_to_string(self, obj: models.Model) -> str:
        return json.dumps(self.value_from_object(obj), default=str)


def encrypted_fields() -> Iterator[tuple[type[models.Model], EncryptedMixin]]:
    """Every encrypted column of every installed model (what the rotation command walks)."""
    from django.apps import apps

    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedMixin):
                yield model, field


def configured_keys(raw: str | Sequence[str]) -> list[str]:
    """`ENCRYPTION_KEYS` as settings read it: a comma- or newline-separated list (or the list env gives)."""
    items = raw if not isinstance(raw, str) else raw.replace("\n", ",").split(",")
    return [item.strip() for item in items if item.strip()]
