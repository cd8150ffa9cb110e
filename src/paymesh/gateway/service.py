"""The gateway's use cases: tokens, tenants, API clients, the demo bootstrap."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from paymesh.gateway import domain
from paymesh.gateway.errors import BadRequest, Conflict, NotFound, Unauthenticated, Unprocessable
from paymesh.gateway.security import (
    ScryptParams,
    generate_signing_key,
    hash_secret,
    load_private_key,
    load_public_key,
    new_client_secret,
    sign,
    verify_secret,
)
from paymesh.gateway.store import ApiClient, GatewayStore, SigningKey, Tenant
from paymesh.platform.clock import Clock, SystemClock, new_id
from paymesh.platform.identity import Caller
from paymesh.platform.settings import GatewaySettings

__all__ = [
    "ClientCache",
    "CreateClient",
    "CreateTenant",
    "DemoCredentials",
    "IssueToken",
    "IssuedToken",
    "KeyRing",
    "bootstrap_demo",
    "create_client",
    "create_tenant",
    "issue_token",
    "revoke_client",
    "verify_token",
]

DEMO_TENANT = "demo"
OPERATOR_TENANT = "operator"
# Tokens may be a little early or late on clocks that disagree.
LEEWAY_S = 30


@functools.cache
def _dummy_hash() -> str:
    """A hash to check against when the client id is unknown, so that both
    answers take as long (no client enumeration by timing)."""
    return hash_secret("not-a-secret", ScryptParams())


class KeyRing:
    """The signing key in use, and public keys by kid, loaded from the store."""

    def __init__(self, store: GatewayStore, *, passphrase: bytes, clock: Clock) -> None:
        self._store = store
        self._passphrase = passphrase
        self._clock = clock
        self._public: dict[str, Ed25519PublicKey] = {}
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
        self._public = {k.kid: load_public_key(k) for k in keys}
        self._loaded_at_us = self._clock.now_us()
        active = next((k for k in keys if k.retired_at_us is None), None)
        if active is not None and (self._signer is None or self._signer[0] != active.kid):
            self._signer = (active.kid, load_private_key(active, passphrase=self._passphrase))

    async def signer(self) -> tuple[str, Ed25519PrivateKey]:
        """(kid, private key) of the key that signs new tokens."""
        if self._signer is None:
            async with self._lock:
                if self._signer is None:
                    await self.ensure()
        assert self._signer is not None
        return self._signer

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for `kid`; reloads (at most every 5 s) to see keys made elsewhere."""
        key = self._public.get(kid)
        if key is not None:
            return key
        async with self._lock:
            if self._clock.now_us() - self._loaded_at_us >= 5_000_000:
                self._install(await self._store.signing_keys())
        return self._public.get(kid)

    async def jwks(self) -> list[dict[str, Any]]:
        """Every public JWK (retired keys too, while tokens they signed may live)."""
        if not self._keys:
            await self.ensure()
        return [json.loads(k.public_jwk) for k in self._keys]


class ClientCache:
    """API clients by id, each kept briefly so a revocation takes effect within `ttl_s`."""

    def __init__(self, store: GatewayStore, *, clock: Clock, ttl_s: float = 2.0) -> None:
        self._store = store
        self._clock = clock
        self._ttl_us = int(ttl_s * 1_000_000)
        self._entries: dict[str, tuple[int, ApiClient | None]] = {}

    async def get(self, client_id: str) -> ApiClient | None:
        """The client, from the cache when fresh."""
        now = self._clock.now_us()
        hit = self._entries.get(client_id)
        if hit is not None and now - hit[0] < self._ttl_us:
            return hit[1]
        client = await self._store.get_client(client_id)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[client_id] = (now, client)
        return client

    def forget(self, client_id: str) -> None:
        """Drop a client from the cache (after revoking it here)."""
        self._entries.pop(client_id, None)


# --- tokens -----------------------------------------------------------------


@dataclass(frozen=True)
class IssueToken:
    """A client-credentials token request."""

    client_id: str
    client_secret: str
    scope: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """An access token and what it grants."""

    access_token: str
    expires_in: int
    scope: str


async def issue_token(
    cmd: IssueToken,
    *,
    store: GatewayStore,
    keys: KeyRing,
    settings: GatewaySettings,
    clock: Clock,
) -> IssuedToken:
    """Check the client's credentials and sign an access token for it."""
    client = await store.get_client(cmd.client_id)
    stored = client.secret_hash if client is not None else _dummy_hash()
    matches = await asyncio.to_thread(verify_secret, cmd.client_secret, stored)
    if client is None or not matches or not client.active:
        raise Unauthenticated("client authentication failed", code="invalid_client")
    try:
        scopes = domain.grant_scopes(cmd.scope, client.scopes)
    except domain.InvalidScope as exc:
        raise BadRequest(str(exc), code="invalid_scope") from exc
    kid, private = await keys.signer()
    claims = domain.build_claims(
        client_id=client.client_id,
        tenant_id=client.tenant_id,
        scopes=scopes,
        issuer=settings.issuer,
        audience=settings.audience,
        now_s=clock.now_us() // 1_000_000,
        ttl_s=settings.token_ttl_s,
        jti=new_id("jti"),
    )
    return IssuedToken(
        access_token=sign(claims, private=private, kid=kid),
        expires_in=settings.token_ttl_s,
        scope=claims["scope"],
    )


def _invalid(detail: str) -> Unauthenticated:
    return Unauthenticated(
        detail,
        code="invalid_token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def verify_token(
    token: str,
    *,
    keys: KeyRing,
    clients: ClientCache,
    settings: GatewaySettings,
    clock: Clock,
) -> Caller:
    """The caller a bearer token proves, or Unauthenticated (401)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _invalid("malformed token") from exc
    if header.get("alg") not in domain.ALGORITHMS:
        raise _invalid("token algorithm not allowed")
    if header.get("typ") != domain.TOKEN_TYPE:
        raise _invalid("not an access token")
    kid = header.get("kid")
    public = await keys.public_key(kid) if isinstance(kid, str) else None
    if public is None:
        raise _invalid("unknown signing key")
    try:
        claims = jwt.decode(
            token,
            public,
            algorithms=list(domain.ALGORITHMS),
            audience=settings.audience,
            issuer=settings.issuer,
            # Times are checked below against the injected clock.
            options={
                "require": list(domain.REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise _invalid(f"invalid token: {exc}") from exc
    now_s = clock.now_us() // 1_000_000
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise _invalid("invalid token times")
    if exp <= now_s - LEEWAY_S:
        raise _invalid("token expired")
    if iat > now_s + LEEWAY_S:
        raise _invalid("token issued in the future")
    sub, tenant, scope = claims.get("sub"), claims.get("tenant"), claims.get("scope")
    if not isinstance(sub, str) or not isinstance(tenant, str) or not isinstance(scope, str):
        raise _invalid("token lacks sub, tenant or scope")
    client = await clients.get(sub)
    if client is None or not client.active or client.tenant_id != tenant:
        raise _invalid("client revoked")
    return Caller(tenant_id=tenant, client_id=sub, scopes=domain.parse_scope(scope))


# --- tenants and clients ----------------------------------------------------


@dataclass(frozen=True)
class CreateTenant:
    """Create a tenant with its fee schedule."""

    name: str
    fee_fixed: int = 0
    fee_basis_points: int = 0
    id: str | None = None


@dataclass(frozen=True)
class CreateClient:
    """Create an API client for a tenant."""

    tenant_id: str
    scopes: frozenset[str]
    client_id: str | None = None


async def create_tenant(cmd: CreateTenant, *, store: GatewayStore, clock: Clock) -> Tenant:
    """Create a tenant; a name already taken is a conflict."""
    tenant = Tenant(
        id=cmd.id or new_id("ten"),
        name=cmd.name,
        fee_fixed=cmd.fee_fixed,
        fee_basis_points=cmd.fee_basis_points,
        created_at_us=clock.now_us(),
    )
    if not await store.add_tenant(tenant):
        existing = await store.get_tenant(tenant.id)
        if existing is not None and existing.name == tenant.name:
            return existing  # the same request again (a derived id)
        raise Conflict(f"a tenant named {cmd.name!r} exists", code="tenant_exists")
    return tenant


async def create_client(
    cmd: CreateClient, *, store: GatewayStore, clock: Clock, scrypt: ScryptParams | None = None
) -> tuple[ApiClient, str]:
    """Create an API client; return it and its secret (shown once, stored only hashed)."""
    unknown = cmd.scopes - set(domain.ALL_SCOPES)
    if unknown or not cmd.scopes:
        raise Unprocessable(
            f"unknown scopes: {domain.format_scope(unknown)}" if unknown else "no scopes",
            code="invalid_scope",
        )
    if await store.get_tenant(cmd.tenant_id) is None:
        raise NotFound(f"no tenant {cmd.tenant_id}")
    secret = new_client_secret()
    client = ApiClient(
        client_id=cmd.client_id or new_id("cli"),
        tenant_id=cmd.tenant_id,
        secret_hash=await asyncio.to_thread(hash_secret, secret, scrypt),
        scopes=cmd.scopes,
        created_at_us=clock.now_us(),
        revoked_at_us=None,
    )
    await store.add_client(client)
    return client, secret


async def revoke_client(
    tenant_id: str,
    client_id: str,
    *,
    store: GatewayStore,
    clients: ClientCache | None,
    clock: Clock,
) -> None:
    """Revoke a client: it gets no new tokens and its tokens stop working."""
    if not await store.revoke_client(tenant_id, client_id, clock.now_us()):
        raise NotFound(f"tenant {tenant_id} has no client {client_id}")
    if clients is not None:
        clients.forget(client_id)


# --- the embedded demo ------------------------------------------------------


@dataclass(frozen=True)
class DemoCredentials:
    """The demo tenant's and the operator's client credentials."""

    client_id: str
    client_secret: str
    operator_client_id: str
    operator_client_secret: str

    def as_dict(self) -> dict[str, str]:
        """The shape of var/demo-credentials.json."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "operator_client_id": self.operator_client_id,
            "operator_client_secret": self.operator_client_secret,
        }


async def bootstrap_demo(
    *, store: GatewayStore, clock: Clock | None = None
) -> DemoCredentials | None:
    """Create the demo tenant and the operator on first start (None when they exist)."""
    clock = clock or SystemClock()
    if await store.tenant_by_name(DEMO_TENANT) is not None:
        return None
    try:
        demo = await create_tenant(CreateTenant(name=DEMO_TENANT), store=store, clock=clock)
    except Conflict:
        return None  # another process bootstrapped meanwhile
    client, secret = await create_client(
        CreateClient(tenant_id=demo.id, scopes=domain.NON_ADMIN_SCOPES), store=store, clock=clock
    )
    operator = await store.tenant_by_name(OPERATOR_TENANT)
    if operator is None:
        operator = await create_tenant(CreateTenant(name=OPERATOR_TENANT), store=store, clock=clock)
    op_client, op_secret = await create_client(
        CreateClient(tenant_id=operator.id, scopes=frozenset({domain.ADMIN})),
        store=store,
        clock=clock,
    )
    return DemoCredentials(
        client_id=client.client_id,
        client_secret=secret,
        operator_client_id=op_client.client_id,
        operator_client_secret=op_secret,
    )
