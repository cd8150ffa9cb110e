"""Endpoint secrets: made here, kept sealed at rest (AES-256-GCM).

The sealing key is derived with HKDF-SHA256 from ``webhooks.secret_key``; each
sealed value is ``v1.<base64url(nonce || ciphertext+tag)>`` with the endpoint
id as associated data, so a sealed secret copied onto another endpoint's row
does not open.
"""

from __future__ import annotations

import base64
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SECRET_PREFIX", "SecretBox", "new_secret"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_VERSION = "v1."
_NONCE = 12


def new_secret() -> str:
    """A fresh endpoint secret, ``whsec_`` and 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class SecretBox:
    """Seal and open endpoint secrets with a key derived from the service's secret key."""

    def __init__(self, secret_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"paymesh webhooks endpoint secrets v1",
        ).derive(secret_key.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, endpoint_id: str) -> str:
        """`plaintext` sealed for `endpoint_id`'s row."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), endpoint_id.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, endpoint_id: str) -> str:
        """The secret sealed for `endpoint_id` (raises if the key or the row is wrong)."""
        if not sealed.startswith(_VERSION):
            raise ValueError("unknown sealed secret format")
        raw = base64.urlsafe_b64decode(sealed.removeprefix(_VERSION))
        return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], endpoint_id.encode()).decode()
