"""The gateway's use cases: tokens, tenants, API clients, the demo bootstrap.

Each takes what was asked, then `deps` (ports.py); those that change something also
take `origin`, who asked, for the audit log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

from paymesh.gateway import domain, meters
from paymesh.gateway.audit import SYSTEM, Origin, record
from paymesh.gateway.domain import ApiClient, Tenant
from paymesh.gateway.errors import BadRequest, Conflict, NotFound, Unauthenticated, Unprocessable
from paymesh.gateway.keyring import LEEWAY_S, KeyRing
from paymesh.gateway.ports import Deps, GatewayStore, TokenDeps
from paymesh.gateway.security import hash_secret, new_client_secret, sign
from paymesh.platform.clock import Clock, new_id
from paymesh.platform.identity import Caller

__all__ = [
    "LEEWAY_S",
    "ClientCache",
    "CreateClient",
    "CreateTenant",
    "DemoCredentials",
    "IssueToken",
    "IssuedToken",
    "KeyRing",
    "VerifyToken",
    "bootstrap_demo",
    "create_client",
    "create_tenant",
    "issue_token",
    "revoke_client",
    "verify_token",
]

DEMO_TENANT = "demo"
OPERATOR_TENANT = "operator"


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
    source: str = "unknown"  # the client's address, for the audit log


@dataclass(frozen=True)
class IssuedToken:
    """An access token and what it grants."""

    access_token: str
    expires_in: int
    scope: str


async def issue_token(cmd: IssueToken, *, deps: TokenDeps) -> IssuedToken:
    """Check the client's credentials and sign an access token for it (audited either way).

    The secret is checked on the hasher's threads (an unknown client against
    a dummy hash, so that both answers take as long).
    """
    store, clock, settings = deps.store, deps.clock, deps.settings
    client = await store.get_client(cmd.client_id)
    matches = await deps.hasher.verify(cmd.client_secret, client.secret_hash if client else None)
    origin = Origin(actor=cmd.client_id, source=cmd.source)
    if client is None or not matches or not client.active:
        reason = (
            "unknown client"
            if client is None
            else "bad secret"
            if not matches
            else "client revoked"
        )
        await record(
            store, clock, origin, "auth.failed", outcome="failure",
            tenant_id=client.tenant_id if client else None, target=cmd.client_id,
            details={"reason": reason, "credential": "client_secret"},
        )  # fmt: skip
        revoked = client is not None and matches
        meters.auth_failed("client_revoked" if revoked else "invalid_client")
        raise Unauthenticated("client authentication failed", code="invalid_client")
    try:
        scopes = domain.grant_scopes(cmd.scope, client.scopes)
    except domain.InvalidScope as exc:
        await record(
            store, clock, origin, "token.issued", outcome="failure", tenant_id=client.tenant_id,
            target=client.client_id, details={"reason": "invalid scope", "scope": cmd.scope},
        )  # fmt: skip
        raise BadRequest(str(exc), code="invalid_scope") from exc
    kid, private = await deps.keys.signer()
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
    await record(
        store, clock, origin, "token.issued", tenant_id=client.tenant_id,
        target=client.client_id,
        details={"kid": kid, "jti": claims["jti"], "scope": claims["scope"]},
    )  # fmt: skip
    return IssuedToken(
        access_token=sign(claims, private=private, kid=kid),
        expires_in=settings.token_ttl_s,
        scope=claims["scope"],
    )


def _invalid(detail: str, reason: str = "invalid_token") -> Unauthenticated:
    return Unauthenticated(
        detail,
        code="invalid_token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        reason=reason,
    )


def _token_ids(token: str) -> dict[str, object]:
    """The kid and jti of a token, if it has them: all of it the audit log may keep."""
    out: dict[str, object] = {}
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        jti = jwt.decode(token, options={"verify_signature": False}).get("jti")
    except jwt.PyJWTError:
        return out
    if isinstance(kid, str):
        out["kid"] = kid[:100]
    if isinstance(jti, str):
        out["jti"] = jti[:100]
    return out


@dataclass(frozen=True)
class VerifyToken:
    """A bearer token presented from `source`.

    `admit_failure` runs before a failure is audited and may refuse it (the
    gateway rate-limits failures per source address), so a flood of bad
    tokens cannot turn into a flood of audit writes.
    """

    token: str
    source: str = "unknown"
    admit_failure: Callable[[], Awaitable[None]] | None = None


async def verify_token(cmd: VerifyToken, *, deps: TokenDeps) -> Caller:
    """The caller a bearer token proves, or Unauthenticated (401, audited)."""
    try:
        return await _verify(cmd.token, deps)
    except Unauthenticated as exc:
        meters.auth_failed(exc.reason)
        if cmd.admit_failure is not None:
            await cmd.admit_failure()
        await record(
            deps.store, deps.clock, Origin(actor="anonymous", source=cmd.source), "auth.failed",
            outcome="failure",
            details={"reason": exc.detail, "credential": "bearer_token", **_token_ids(cmd.token)},
        )  # fmt: skip
        raise


async def _verify(token: str, deps: TokenDeps) -> Caller:
    settings = deps.settings
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _invalid("malformed token") from exc
    if header.get("alg") not in domain.ALGORITHMS:
        raise _invalid("token algorithm not allowed")
    if header.get("typ") != domain.TOKEN_TYPE:
        raise _invalid("not an access token")
    kid = header.get("kid")
    public = await deps.keys.public_key(kid) if isinstance(kid, str) else None
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
    now_s = deps.clock.now_us() // 1_000_000
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise _invalid("invalid token times")
    if exp <= now_s - LEEWAY_S:
        raise _invalid("token expired", "expired")
    if iat > now_s + LEEWAY_S:
        raise _invalid("token issued in the future")
    sub, tenant, scope = claims.get("sub"), claims.get("tenant"), claims.get("scope")
    if not isinstance(sub, str) or not isinstance(tenant, str) or not isinstance(scope, str):
        raise _invalid("token lacks sub, tenant or scope")
    client = await deps.clients.get(sub)
    if client is None or not client.active or client.tenant_id != tenant:
        raise _invalid("client revoked", "revoked")
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


async def create_tenant(cmd: CreateTenant, *, origin: Origin, deps: Deps) -> Tenant:
    """Create a tenant; a name already taken is a conflict (audited)."""
    store, clock = deps.store, deps.clock
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
        await record(
            store, clock, origin, "tenant.created", outcome="failure", target=cmd.name,
            details={"reason": "tenant_exists"},
        )  # fmt: skip
        raise Conflict(f"a tenant named {cmd.name!r} exists", code="tenant_exists")
    await record(
        store, clock, origin, "tenant.created", tenant_id=tenant.id, target=tenant.id,
        details={"name": tenant.name, "fee_fixed": tenant.fee_fixed,
                 "fee_basis_points": tenant.fee_basis_points},
    )  # fmt: skip
    return tenant


async def create_client(cmd: CreateClient, *, origin: Origin, deps: Deps) -> tuple[ApiClient, str]:
    """Create an API client; return it and its secret (shown once, stored only hashed)."""
    store, clock = deps.store, deps.clock
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
        secret_hash=await asyncio.to_thread(hash_secret, secret, deps.scrypt),
        scopes=cmd.scopes,
        created_at_us=clock.now_us(),
        revoked_at_us=None,
    )
    await store.add_client(client)
    await record(
        store, clock, origin, "client.created", tenant_id=client.tenant_id,
        target=client.client_id, details={"scopes": sorted(client.scopes)},
    )  # fmt: skip
    return client, secret


async def revoke_client(tenant_id: str, client_id: str, *, origin: Origin, deps: Deps) -> None:
    """Revoke a client: it gets no new tokens and its tokens stop working (audited)."""
    store, clock = deps.store, deps.clock
    if not await store.revoke_client(tenant_id, client_id, clock.now_us()):
        await record(
            store, clock, origin, "client.revoked", outcome="failure", tenant_id=tenant_id,
            target=client_id, details={"reason": "not_found"},
        )  # fmt: skip
        raise NotFound(f"tenant {tenant_id} has no client {client_id}")
    await record(store, clock, origin, "client.revoked", tenant_id=tenant_id, target=client_id)
    if deps.clients is not None:
        deps.clients.forget(client_id)


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


async def bootstrap_demo(*, deps: Deps) -> DemoCredentials | None:
    """Create the demo tenant and the operator on first start (None when they exist)."""
    store = deps.store
    if await store.tenant_by_name(DEMO_TENANT) is not None:
        return None
    try:
        demo = await create_tenant(CreateTenant(name=DEMO_TENANT), origin=SYSTEM, deps=deps)
    except Conflict:
        return None  # another process bootstrapped meanwhile
    demo_scopes = CreateClient(tenant_id=demo.id, scopes=domain.NON_ADMIN_SCOPES)
    client, secret = await create_client(demo_scopes, origin=SYSTEM, deps=deps)
    operator = await store.tenant_by_name(OPERATOR_TENANT)
    if operator is None:
        operator = await create_tenant(CreateTenant(name=OPERATOR_TENANT), origin=SYSTEM, deps=deps)
    admin = CreateClient(tenant_id=operator.id, scopes=frozenset({domain.ADMIN}))
    op_client, op_secret = await create_client(admin, origin=SYSTEM, deps=deps)
    return DemoCredentials(
        client_id=client.client_id,
        client_secret=secret,
        operator_client_id=op_client.client_id,
        operator_client_secret=op_secret,
    )
