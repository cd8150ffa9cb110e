"""Operator tasks run from the ``paymesh`` command against the gateway database:
key rotation, the audit log, tenants, API clients and console users (audited as
``cli:<user>``).

Each call migrates the gateway database (a no-op when current), opens it,
does its work and closes it. Fee schedules live in the payments service,
which these commands do not reach: set fees through ``POST /v1/tenants``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from paymesh.gateway.app import migrate
from paymesh.gateway.audit import cli_origin
from paymesh.gateway.console import service as console
from paymesh.gateway.console.service import ConsoleDeps
from paymesh.gateway.console.totp import reset_totp
from paymesh.gateway.console.users import ConsoleUser, SessionPolicy
from paymesh.gateway.domain import ApiClient, AuditEntry, SigningKey, Tenant
from paymesh.gateway.keyring import KeyState, key_states, rotate_signing_key
from paymesh.gateway.ports import Deps, GatewayStore
from paymesh.gateway.security import ResponseSealer, SecretHasher
from paymesh.gateway.service import (
    CreateClient,
    CreateTenant,
    DemoCredentials,
    bootstrap_demo,
    create_client,
    create_tenant,
)
from paymesh.gateway.service import revoke_client as _revoke_client
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.db import Database
from paymesh.platform.settings import PlatformSettings

__all__ = [
    "add_client",
    "add_tenant",
    "add_user",
    "bootstrap",
    "console_deps",
    "list_keys",
    "list_users",
    "recent_audit",
    "reset_user_password",
    "reset_user_totp",
    "revoke_client",
    "rotate_key",
    "set_user_disabled",
]


@asynccontextmanager
async def _store(settings: PlatformSettings) -> AsyncIterator[SqlGatewayStore]:
    await migrate(settings)
    db = Database(settings.section(GatewaySettings).database_url, service="gateway")
    try:
        yield SqlGatewayStore(db)
    finally:
        await db.dispose()


async def bootstrap(settings: PlatformSettings) -> DemoCredentials | None:
    """Create the demo tenant and the operator on first start (None when they exist)."""
    async with _store(settings) as store:
        return await bootstrap_demo(deps=Deps(store=store, clock=SystemClock()))


async def rotate_key(
    settings: PlatformSettings, *, clock: Clock | None = None
) -> tuple[SigningKey, list[str]]:
    """A new active signing key; the previous one retired (it verifies while its tokens live)."""
    async with _store(settings) as store:
        return await rotate_signing_key(
            store=store,
            passphrase=settings.section(GatewaySettings).secret_key.get_secret_value().encode(),
            clock=clock or SystemClock(),
            origin=cli_origin(),
        )


async def list_keys(settings: PlatformSettings, *, clock: Clock | None = None) -> list[KeyState]:
    """Every signing key with its status, newest first."""
    async with _store(settings) as store:
        keys = await store.signing_keys()
    now = (clock or SystemClock()).now_us()
    return key_states(keys, now_us=now, token_ttl_s=settings.section(GatewaySettings).token_ttl_s)


async def recent_audit(settings: PlatformSettings, *, limit: int = 20) -> list[AuditEntry]:
    """The newest audit entries, newest first."""
    async with _store(settings) as store:
        return await store.recent_audit(limit)


async def add_tenant(settings: PlatformSettings, name: str) -> Tenant:
    """Create a tenant in the gateway (no fee schedule: see the module docstring)."""
    async with _store(settings) as store:
        deps = Deps(store=store, clock=SystemClock())
        return await create_tenant(CreateTenant(name=name), origin=cli_origin(), deps=deps)


async def add_client(
    settings: PlatformSettings, tenant_id: str, scopes: frozenset[str]
) -> tuple[ApiClient, str]:
    """Create an API client; return it and its secret (shown once)."""
    async with _store(settings) as store:
        asked = CreateClient(tenant_id=tenant_id, scopes=scopes)
        deps = Deps(store=store, clock=SystemClock())
        return await create_client(asked, origin=cli_origin(), deps=deps)


async def revoke_client(settings: PlatformSettings, tenant_id: str, client_id: str) -> None:
    """Revoke a tenant's API client (running gateways notice within their cache's 2 s)."""
    async with _store(settings) as store:
        deps = Deps(store=store, clock=SystemClock())
        await _revoke_client(tenant_id, client_id, origin=cli_origin(), deps=deps)


@asynccontextmanager
async def console_deps(
    settings: PlatformSettings, store: GatewayStore | None = None
) -> AsyncIterator[ConsoleDeps]:
    """What the console's use cases need, on `store` (None: the gateway database, opened
    here), with a secret hasher of their own."""
    g = settings.section(GatewaySettings)
    hasher = SecretHasher(threads=1, max_waiting=4)
    policy = SessionPolicy(idle_s=g.console_idle_timeout_s, max_s=g.console_session_max_s)
    sealer = ResponseSealer(g.secret_key.get_secret_value().encode())
    try:
        if store is not None:
            yield ConsoleDeps(
                store=store, clock=SystemClock(), hasher=hasher, policy=policy, sealer=sealer
            )
            return
        async with _store(settings) as opened:
            yield ConsoleDeps(
                store=opened, clock=SystemClock(), hasher=hasher, policy=policy, sealer=sealer
            )
    finally:
        hasher.close()


async def add_user(
    settings: PlatformSettings, email: str, role: str, tenant_id: str | None
) -> tuple[ConsoleUser, str]:
    """Create a console user; return it and its one-time password."""
    async with console_deps(settings) as deps:
        return await console.create_user(email, role, tenant_id, origin=cli_origin(), deps=deps)


async def list_users(settings: PlatformSettings) -> list[ConsoleUser]:
    """Every console user."""
    async with console_deps(settings) as deps:
        return await console.list_users(deps=deps)


async def set_user_disabled(settings: PlatformSettings, email: str, disabled: bool) -> None:
    """Disable a console user (its sessions end) or enable it again."""
    async with console_deps(settings) as deps:
        await console.set_disabled(email, disabled, origin=cli_origin(), deps=deps)


async def reset_user_totp(settings: PlatformSettings, email: str) -> None:
    """Remove a console user's second factor (a lost authenticator)."""
    async with console_deps(settings) as deps:
        await reset_totp(email, origin=cli_origin(), deps=deps)


async def reset_user_password(settings: PlatformSettings, email: str) -> str:
    """A new one-time password for a console user."""
    async with console_deps(settings) as deps:
        return await console.reset_password(email, origin=cli_origin(), deps=deps)
