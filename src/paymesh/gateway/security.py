"""Client-secret hashing (scrypt) and the token signing keys (Ed25519, JWKS).

Secrets are stored as ``scrypt$n$r$p$salt$hash`` so the cost can be raised
later without invalidating old hashes. Private keys are kept as PEM,
encrypted with ``gateway.secret_key``. The gateway hashes on the threads of
a :class:`SecretHasher`, never on its event loop.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import OKPAlgorithm

from paymesh.gateway.domain import SigningKey
from paymesh.gateway.errors import Overloaded

__all__ = [
    "ScryptParams",
    "SecretHasher",
    "generate_signing_key",
    "hash_secret",
    "load_private_key",
    "load_public_key",
    "new_client_secret",
    "public_jwk",
    "verify_secret",
]


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: n (CPU/memory), r (block size), p (parallelism)."""

    n: int = 2**15
    r: int = 8
    p: int = 1
    dklen: int = 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * n * r + (1 << 20)
    )


def new_client_secret() -> str:
    """A new random client secret (256 bits)."""
    return "sk_" + secrets.token_urlsafe(32)


def hash_secret(secret: str, params: ScryptParams | None = None) -> str:
    """A salted scrypt hash of `secret`, with its parameters (slow on purpose)."""
    p = params or ScryptParams()
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, p.n, p.r, p.p, p.dklen)
    return f"scrypt${p.n}${p.r}${p.p}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """True when `secret` matches the stored hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(secret, _unb64(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against when the client id is unknown, so that both
    answers take as long (no client enumeration by timing)."""
    return hash_secret("not-a-secret", ScryptParams())


def _verify_or_dummy(secret: str, stored: str | None) -> bool:
    if stored is None:
        verify_secret(secret, _dummy_hash())
        return False
    return verify_secret(secret, stored)


_T = TypeVar("_T")


class SecretHasher:
    """Runs scrypt on a few threads of its own, with a bounded queue in front of them.

    A hash costs ~0.1 s of CPU on purpose. On the event loop, or on the loop's
    shared default executor with its unbounded queue, a flood of them stalls
    every other request. Here at most `threads` hashes run at once and at
    most `max_waiting` more wait; a request beyond that is refused before
    anything is computed: 429 `overloaded` with Retry-After.
    """

    def __init__(self, *, threads: int, max_waiting: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scrypt")
        self._capacity = threads + max_waiting
        self._queued = 0

    async def verify(self, secret: str, stored: str | None) -> bool:
        """Whether `secret` matches `stored`; None (an unknown client) costs the same, False."""
        return await self._run(_verify_or_dummy, secret, stored)

    async def hash(self, secret: str, params: ScryptParams | None = None) -> str:
        """A new salted hash of `secret`."""
        return await self._run(hash_secret, secret, params)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._queued >= self._capacity:
            raise Overloaded(
                "too many client authentications at once: retry shortly",
                headers={"Retry-After": "1"},
                limit="hashing",
            )
        self._queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._queued -= 1

    def close(self) -> None:
        """Stop the threads (hashes not started are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def public_jwk(key: SigningKey) -> dict[str, Any]:
    """The public JWK of a signing key, with kid, alg and use."""
    jwk: dict[str, Any] = json.loads(key.public_jwk)
    return jwk


def generate_signing_key(*, passphrase: bytes, now_us: int) -> SigningKey:
    """A new Ed25519 signing key; its kid is the RFC 7638 thumbprint of the public key."""
    private = Ed25519PrivateKey.generate()
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    thumb_input = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":")
    )
    kid = _b64(hashlib.sha256(thumb_input.encode()).digest())
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    ).decode()
    return SigningKey(
        kid=kid,
        private_pem=pem,
        public_jwk=json.dumps(jwk, sort_keys=True),
        created_at_us=now_us,
        retired_at_us=None,
    )


def load_private_key(key: SigningKey, *, passphrase: bytes) -> Ed25519PrivateKey:
    """The private key of a signing key (decrypted with the gateway's secret)."""
    loaded = serialization.load_pem_private_key(key.private_pem.encode(), password=passphrase)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise TypeError(f"signing key {key.kid} is not Ed25519")
    return loaded


def load_public_key(key: SigningKey) -> Ed25519PublicKey:
    """The public key of a signing key."""
    loaded = OKPAlgorithm.from_jwk(key.public_jwk)
    if not isinstance(loaded, Ed25519PublicKey):
        raise TypeError(f"signing key {key.kid} is not an Ed25519 public key")
    return loaded


def sign(claims: dict[str, Any], *, private: Ed25519PrivateKey, kid: str) -> str:
    """A compact JWS of `claims`, typed as an access token."""
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})


class ResponseSealer:
    """Encrypts stored idempotent responses at rest (AES-256-GCM).

    A replayed response can hold a secret shown once (a new API client's
    secret), so the idempotency table never keeps a response in clear text.
    The key is derived from ``gateway.secret_key`` with HKDF; the record's
    tenant and key are bound in as associated data, so a sealed body cannot
    be replayed under another record.
    """

    def __init__(self, secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"paymesh idempotency v1"
        ).derive(secret)
        self._aead = AESGCM(key)

    def seal(self, body: bytes, *, context: str) -> bytes:
        """Nonce followed by the ciphertext of `body`."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, body, context.encode())

    def open(self, sealed: bytes, *, context: str) -> bytes:
        """The body sealed by :meth:`seal` under the same context."""
        return self._aead.decrypt(sealed[:12], sealed[12:], context.encode())
