"""What the gateway's use cases (service.py) depend on: its store, as a Protocol, and
`Deps`, the bundle they are given.

The gateway authenticates its callers, so its use cases know who asked as an audit
:class:`~paymesh.gateway.audit.Origin` (the client and its address, or the operator at
the command line), not as a :class:`~paymesh.platform.identity.Caller`.
:class:`SqlGatewayStore <paymesh.gateway.store.SqlGatewayStore>` is the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from paymesh.gateway.console.users import ConsoleSession, ConsoleUser
from paymesh.gateway.domain import ApiClient, AuditEntry, IdempotencyRecord, SigningKey, Tenant
from paymesh.platform.clock import Clock

if TYPE_CHECKING:
    from paymesh.gateway.keyring import KeyRing
    from paymesh.gateway.security import ScryptParams, SecretHasher
    from paymesh.gateway.service import ClientCache
    from paymesh.gateway.settings import GatewaySettings

__all__ = ["ConsoleStore", "Deps", "GatewayStore", "TokenDeps"]


class ConsoleStore(Protocol):
    """What the console keeps in the gateway's database."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def add_console_user(self, user: ConsoleUser) -> bool: ...

    async def console_user(self, user_id: str) -> ConsoleUser | None: ...

    async def console_user_by_email(self, email: str) -> ConsoleUser | None: ...

    async def list_console_users(self) -> list[ConsoleUser]: ...

    async def update_console_user(
        self,
        user_id: str,
        *,
        expect: dict[str, object] | None = None,
        end_sessions: bool = False,
        **values: object,
    ) -> bool: ...

    async def count_wrong_password(
        self, user_id: str, *, attempts: int, lock_until_us: int
    ) -> bool: ...

    async def record_sign_in(
        self, user_id: str, password_hash: str, now_us: int
    ) -> ConsoleUser | None: ...

    async def accept_totp_step(self, user_id: str, step: int) -> bool: ...

    async def totp_required_roles(self) -> frozenset[str]: ...

    async def set_totp_required(self, role: str, required: bool) -> None: ...

    async def add_console_session(self, session: ConsoleSession) -> None: ...

    async def console_session(self, session_id: str) -> ConsoleSession | None: ...

    async def update_console_session(self, session_id: str, **values: object) -> None: ...

    async def delete_console_session(self, session_id: str) -> None: ...

    async def append_audit(self, entry: AuditEntry) -> None: ...

    async def audit_page(
        self,
        *,
        limit: int,
        before: tuple[int, str] | None = None,
        actor: str | None = None,
        action: str | None = None,
        tenant_id: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> list[AuditEntry]: ...


class GatewayStore(ConsoleStore, Protocol):
    """The gateway's state: tenants, API clients, signing keys, the audit log and the
    idempotency records."""

    async def add_tenant(self, tenant: Tenant) -> bool: ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def tenant_by_name(self, name: str) -> Tenant | None: ...

    async def add_client(self, client: ApiClient) -> None: ...

    async def get_client(self, client_id: str) -> ApiClient | None: ...

    async def list_clients(self, tenant_id: str) -> list[ApiClient]: ...

    async def revoke_client(self, tenant_id: str, client_id: str, now_us: int) -> bool: ...

    async def add_signing_key(self, key: SigningKey) -> None: ...

    async def signing_keys(self) -> list[SigningKey]: ...

    async def rotate_signing_key(self, key: SigningKey) -> list[str]: ...

    async def signing_key(self, kid: str) -> SigningKey | None: ...

    async def append_audit(self, entry: AuditEntry) -> None: ...

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]: ...

    async def get_idempotency(self, tenant_id: str, key: str) -> IdempotencyRecord | None: ...

    async def claim_idempotency(self, record: IdempotencyRecord) -> bool: ...

    async def take_over_idempotency(
        self, previous: IdempotencyRecord, record: IdempotencyRecord
    ) -> bool: ...

    async def complete_idempotency(
        self, record: IdempotencyRecord, *, status: int, headers: dict[str, str], body: bytes
    ) -> bool: ...

    async def release_idempotency(self, record: IdempotencyRecord) -> None: ...

    async def purge_expired_idempotency(self, now_us: int) -> int: ...


@dataclass(frozen=True, kw_only=True)
class Deps:
    """What the tenant and client use cases need (an operator's command has just these)."""

    store: GatewayStore
    clock: Clock
    # A running gateway's client cache, told of each revocation (None: no cache here).
    clients: ClientCache | None = None
    # The cost of new client secrets' hashes (None: the production cost).
    scrypt: ScryptParams | None = None


@dataclass(frozen=True, kw_only=True)
class TokenDeps(Deps):
    """What issuing and verifying tokens needs besides: a running gateway's parts."""

    clients: ClientCache
    keys: KeyRing
    hasher: SecretHasher
    settings: GatewaySettings
