"""The token signing keys in use: the active signer, the verifying keys, rotation.

A rotation (``paymesh keys rotate``) adds a new active key and retires the
previous one. A retired key stays in the JWKS and keeps verifying until
every token it signed has expired: ``retired_at + token_ttl_s + LEEWAY_S``;
then it is dropped from both. A running gateway sees a rotation without a
restart: it re-reads the keys at most every ``REFRESH_S`` seconds (so it
signs with the new key within that time), and at once (at most once per
``UNKNOWN_KID_RELOAD_S``) when a token names a kid it does not know, so a
token signed by another gateway that already switched is accepted.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from paymesh.gateway.audit import Origin, record
from paymesh.gateway.domain import SigningKey
from paymesh.gateway.ports import GatewayStore
from paymesh.gateway.security import generate_signing_key, load_private_key, load_public_key
from paymesh.platform.clock import Clock

__all__ = [
    "LEEWAY_S",
    "REFRESH_S",
    "UNKNOWN_KID_RELOAD_S",
    "KeyRing",
    "KeyState",
    "key_states",
    "rotate_signing_key",
]

# Tokens may be a little early or late on clocks that disagree.
LEEWAY_S = 30
# How often a running gateway re-reads the keys (to sign with a rotated-in key).
REFRESH_S = 30.0
# The fastest a token with an unknown kid makes the gateway re-read the keys.
UNKNOWN_KID_RELOAD_S = 1.0


def verifies_until_us(key: SigningKey, token_ttl_s: int) -> int | None:
    """When a retired key stops verifying (None: the active key)."""
    if key.retired_at_us is None:
        return None
    return key.retired_at_us + (token_ttl_s + LEEWAY_S) * 1_000_000


@dataclass(frozen=True)
class KeyState:
    """A signing key as ``paymesh keys list`` shows it."""

    kid: str
    created_at_us: int
    retired_at_us: int | None
    verifies_until_us: int | None
    status: str  # active | retired (still verifying) | expired


def key_states(keys: list[SigningKey], *, now_us: int, token_ttl_s: int) -> list[KeyState]:
    """Each key with its status at `now_us`."""
    out = []
    for k in keys:
        until = verifies_until_us(k, token_ttl_s)
        status = "active" if until is None else "retired" if now_us < until else "expired"
        out.append(KeyState(k.kid, k.created_at_us, k.retired_at_us, until, status))
    return out


class KeyRing:
    """The signing key in use, and the public keys that verify, loaded from the store."""

    def __init__(
        self,
        store: GatewayStore,
        *,
        passphrase: bytes,
        clock: Clock,
        token_ttl_s: int = 600,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._store = store
        self._passphrase = passphrase
        self._clock = clock
        self._ttl_s = token_ttl_s
        self._refresh_us = int(refresh_s * 1_000_000)
        # kid -> (public key, verifies until or None)
        self._public: dict[str, tuple[Ed25519PublicKey, int | None]] = {}
        self._signer: tuple[str, Ed25519PrivateKey] | None = None
        self._keys: list[SigningKey] = []
        self._loaded_at_us = -(10**18)
        self._lock = asyncio.Lock()

    async def ensure(self) -> None:
        """Load the keys, creating the first signing key on first start."""
        keys = await self._store.signing_keys()
        if not any(k.retired_at_us is None for k in keys):
            key = generate_signing_key(passphrase=self._passphrase, now_us=self._clock.now_us())
            await self._store.add_signing_key(key)
            keys = await self._store.signing_keys()
        self._install(keys)

    def _install(self, keys: list[SigningKey]) -> None:
        self._keys = keys
        self._public = {
            k.kid: (load_public_key(k), verifies_until_us(k, self._ttl_s)) for k in keys
        }
        self._loaded_at_us = self._clock.now_us()
        active = next((k for k in keys if k.retired_at_us is None), None)  # newest first
        if active is not None and (self._signer is None or self._signer[0] != active.kid):
            self._signer = (active.kid, load_private_key(active, passphrase=self._passphrase))

    def _stale(self) -> bool:
        return self._clock.now_us() - self._loaded_at_us >= self._refresh_us

    async def _refresh(self) -> None:
        """Re-read the keys when not read for REFRESH_S (or never)."""
        if self._signer is None or self._stale():
            async with self._lock:
                if self._signer is None or self._stale():
                    await self.ensure()

    async def signer(self) -> tuple[str, Ed25519PrivateKey]:
        """(kid, private key) of the key that signs new tokens."""
        await self._refresh()
        assert self._signer is not None
        return self._signer

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for `kid`, None if unknown or retired past its tokens' lifetime."""
        await self._refresh()
        if kid not in self._public:
            async with self._lock:
                waited = self._clock.now_us() - self._loaded_at_us
                if kid not in self._public and waited >= UNKNOWN_KID_RELOAD_S * 1_000_000:
                    self._install(await self._store.signing_keys())
        found = self._public.get(kid)
        if found is None:
            return None
        public, until = found
        if until is not None and self._clock.now_us() >= until:
            return None
        return public

    async def jwks(self) -> list[dict[str, Any]]:
        """Every public JWK that verifies: the active key, and retired keys while their
        tokens may live."""
        await self._refresh()
        now = self._clock.now_us()
        return [
            json.loads(k.public_jwk)
            for k in self._keys
            if (until := verifies_until_us(k, self._ttl_s)) is None or now < until
        ]


async def rotate_signing_key(
    *, store: GatewayStore, passphrase: bytes, clock: Clock, origin: Origin
) -> tuple[SigningKey, list[str]]:
    """Make a new signing key the active one, retiring the previous; audited."""
    key = generate_signing_key(passphrase=passphrase, now_us=clock.now_us())
    retired = await store.rotate_signing_key(key)
    await record(store, clock, origin, "key.rotated", target=key.kid, details={"retired": retired})
    return key, retired
