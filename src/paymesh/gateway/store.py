"""The gateway's own tables: tenants, API clients, signing keys, idempotency records,
the append-only audit log.

SQLAlchemy Core on :class:`paymesh.platform.db.Database`; the same SQL runs
on SQLite and PostgreSQL. Claiming an Idempotency-Key is one INSERT: the
primary key (tenant_id, key) makes a second claimant fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from paymesh.gateway.domain import IdempotencyRecord
from paymesh.platform.db import Database

__all__ = ["ApiClient", "AuditEntry", "GatewayStore", "SigningKey", "Tenant", "metadata"]

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("fee_fixed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fee_basis_points", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
)

api_clients = sa.Table(
    "api_clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    # "scrypt$n$r$p$salt$hash" (base64): the parameters travel with the hash.
    sa.Column("secret_hash", sa.String(300), nullable=False),
    sa.Column("scopes", sa.String(500), nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("revoked_at_us", sa.BigInteger, nullable=True),
    sa.Index("ix_api_clients_tenant", "tenant_id"),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("private_pem", sa.Text, nullable=False),
    sa.Column("public_jwk", sa.Text, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("retired_at_us", sa.BigInteger, nullable=True),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    # Who holds the claim: only the holder completes or releases it.
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_headers", sa.Text, nullable=True),
    sa.Column("response_body", sa.LargeBinary, nullable=True),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    sa.Index("ix_idempotency_keys_expires", "expires_at_us"),
)

# Append-only: the store only inserts; migration 0002 adds triggers refusing UPDATE/DELETE.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Index("ix_audit_log_at", "at_us"),
)


@dataclass(frozen=True)
class AuditEntry:
    """One security-relevant event: who did what to what, when, from where, and how it went."""

    id: str
    at_us: int
    actor: str
    tenant_id: str | None
    action: str
    target: str | None
    outcome: str
    source: str
    details: dict[str, object]


@dataclass(frozen=True)
class Tenant:
    """A customer of the platform; every API client and object belongs to one."""

    id: str
    name: str
    fee_fixed: int
    fee_basis_points: int
    created_at_us: int


@dataclass(frozen=True)
class ApiClient:
    """OAuth2 client credentials of a tenant (the secret only as a hash)."""

    client_id: str
    tenant_id: str
    secret_hash: str
    scopes: frozenset[str]
    created_at_us: int
    revoked_at_us: int | None

    @property
    def active(self) -> bool:
        """False once revoked."""
        return self.revoked_at_us is None


@dataclass(frozen=True)
class SigningKey:
    """A token signing key: its private PEM and public JWK (JSON)."""

    kid: str
    private_pem: str
    public_jwk: str
    created_at_us: int
    retired_at_us: int | None


def _tenant(row: sa.Row[tuple[object, ...]]) -> Tenant:
    m = row._mapping
    return Tenant(
        id=m["id"],
        name=m["name"],
        fee_fixed=m["fee_fixed"],
        fee_basis_points=m["fee_basis_points"],
        created_at_us=m["created_at_us"],
    )


def _client(row: sa.Row[tuple[object, ...]]) -> ApiClient:
    m = row._mapping
    return ApiClient(
        client_id=m["client_id"],
        tenant_id=m["tenant_id"],
        secret_hash=m["secret_hash"],
        scopes=frozenset(m["scopes"].split()),
        created_at_us=m["created_at_us"],
        revoked_at_us=m["revoked_at_us"],
    )


def _key(row: sa.Row[tuple[object, ...]]) -> SigningKey:
    m = row._mapping
    return SigningKey(
        kid=m["kid"],
        private_pem=m["private_pem"],
        public_jwk=m["public_jwk"],
        created_at_us=m["created_at_us"],
        retired_at_us=m["retired_at_us"],
    )


def _audit(row: sa.Row[tuple[object, ...]]) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        id=m["id"],
        at_us=m["at_us"],
        actor=m["actor"],
        tenant_id=m["tenant_id"],
        action=m["action"],
        target=m["target"],
        outcome=m["outcome"],
        source=m["source"],
        details=json.loads(m["details"]),
    )


def _record(row: sa.Row[tuple[object, ...]]) -> IdempotencyRecord:
    m = row._mapping
    headers = json.loads(m["response_headers"]) if m["response_headers"] else None
    return IdempotencyRecord(
        tenant_id=m["tenant_id"],
        key=m["key"],
        fingerprint=m["fingerprint"],
        state=m["state"],
        owner=m["owner"],
        created_at_us=m["created_at_us"],
        expires_at_us=m["expires_at_us"],
        response_status=m["response_status"],
        response_headers=headers,
        response_body=bytes(m["response_body"]) if m["response_body"] is not None else None,
    )


class GatewayStore:
    """Persistence of the gateway's state."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- tenants and clients --------------------------------------------

    async def add_tenant(self, tenant: Tenant) -> bool:
        """Insert `tenant`; False when a tenant of that name exists."""
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    tenants.insert().values(
                        id=tenant.id,
                        name=tenant.name,
                        fee_fixed=tenant.fee_fixed,
                        fee_basis_points=tenant.fee_basis_points,
                        created_at_us=tenant.created_at_us,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with this id."""
        async with self.db.read() as conn:
            row = (await conn.execute(tenants.select().where(tenants.c.id == tenant_id))).first()
        return _tenant(row) if row else None

    async def tenant_by_name(self, name: str) -> Tenant | None:
        """The tenant with this name."""
        async with self.db.read() as conn:
            row = (await conn.execute(tenants.select().where(tenants.c.name == name))).first()
        return _tenant(row) if row else None

    async def add_client(self, client: ApiClient) -> None:
        """Insert an API client."""
        async with self.db.transaction() as conn:
            await conn.execute(
                api_clients.insert().values(
                    client_id=client.client_id,
                    tenant_id=client.tenant_id,
                    secret_hash=client.secret_hash,
                    scopes=" ".join(sorted(client.scopes)),
                    created_at_us=client.created_at_us,
                    revoked_at_us=client.revoked_at_us,
                )
            )

    async def get_client(self, client_id: str) -> ApiClient | None:
        """The API client with this id (revoked ones too)."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(api_clients.select().where(api_clients.c.client_id == client_id))
            ).first()
        return _client(row) if row else None

    async def revoke_client(self, tenant_id: str, client_id: str, now_us: int) -> bool:
        """Revoke a tenant's client (idempotent); False when it has no such client."""
        c = api_clients.c
        async with self.db.transaction() as conn:
            found = (
                await conn.execute(
                    sa.select(c.revoked_at_us).where(
                        c.client_id == client_id, c.tenant_id == tenant_id
                    )
                )
            ).first()
            if found is None:
                return False
            if found.revoked_at_us is None:
                await conn.execute(
                    api_clients.update()
                    .where(c.client_id == client_id)
                    .values(revoked_at_us=now_us)
                )
        return True

    # --- signing keys ---------------------------------------------------

    async def add_signing_key(self, key: SigningKey) -> None:
        """Insert a signing key."""
        async with self.db.transaction() as conn:
            await conn.execute(
                signing_keys.insert().values(
                    kid=key.kid,
                    private_pem=key.private_pem,
                    public_jwk=key.public_jwk,
                    created_at_us=key.created_at_us,
                    retired_at_us=key.retired_at_us,
                )
            )

    async def signing_keys(self) -> list[SigningKey]:
        """Every signing key, newest first."""
        k = signing_keys.c
        async with self.db.read() as conn:
            rows = (
                await conn.execute(signing_keys.select().order_by(k.created_at_us.desc(), k.kid))
            ).all()
        return [_key(r) for r in rows]

    async def rotate_signing_key(self, key: SigningKey) -> list[str]:
        """Retire the active key(s) at `key.created_at_us` and make `key` the active one;
        return the kids retired (one transaction)."""
        k = signing_keys.c
        async with self.db.transaction() as conn:
            active = (
                await conn.execute(sa.select(k.kid).where(k.retired_at_us.is_(None)))
            ).scalars()
            retired = sorted(str(kid) for kid in active)
            await conn.execute(
                signing_keys.update()
                .where(k.retired_at_us.is_(None))
                .values(retired_at_us=key.created_at_us)
            )
            await conn.execute(
                signing_keys.insert().values(
                    kid=key.kid,
                    private_pem=key.private_pem,
                    public_jwk=key.public_jwk,
                    created_at_us=key.created_at_us,
                    retired_at_us=None,
                )
            )
        return retired

    async def signing_key(self, kid: str) -> SigningKey | None:
        """The signing key with this kid."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(signing_keys.select().where(signing_keys.c.kid == kid))
            ).first()
        return _key(row) if row else None

    # --- audit log ------------------------------------------------------

    async def append_audit(self, entry: AuditEntry) -> None:
        """Append an audit entry (entries are never changed or deleted)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                audit_log.insert().values(
                    id=entry.id,
                    at_us=entry.at_us,
                    actor=entry.actor[:200],
                    tenant_id=entry.tenant_id,
                    action=entry.action,
                    target=entry.target[:200] if entry.target else None,
                    outcome=entry.outcome,
                    source=entry.source[:200],
                    details=json.dumps(entry.details, sort_keys=True, default=str),
                )
            )

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """The newest `limit` audit entries, newest first."""
        a = audit_log.c
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    audit_log.select().order_by(a.at_us.desc(), a.id.desc()).limit(limit)
                )
            ).all()
        return [_audit(r) for r in rows]

    # --- idempotency ----------------------------------------------------

    async def get_idempotency(self, tenant_id: str, key: str) -> IdempotencyRecord | None:
        """The record stored under (tenant, key)."""
        i = idempotency_keys.c
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    idempotency_keys.select().where(i.tenant_id == tenant_id, i.key == key)
                )
            ).first()
        return _record(row) if row else None

    async def claim_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert an in-progress record; False when someone already holds the key."""
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    idempotency_keys.insert().values(
                        tenant_id=record.tenant_id,
                        key=record.key,
                        fingerprint=record.fingerprint,
                        state="in_progress",
                        owner=record.owner,
                        created_at_us=record.created_at_us,
                        expires_at_us=record.expires_at_us,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def take_over_idempotency(
        self, previous: IdempotencyRecord, record: IdempotencyRecord
    ) -> bool:
        """Replace a stale or expired record by a new claim, if nobody changed it meanwhile."""
        i = idempotency_keys.c
        async with self.db.transaction() as conn:
            result = await conn.execute(
                idempotency_keys.update()
                .where(
                    i.tenant_id == previous.tenant_id,
                    i.key == previous.key,
                    i.owner == previous.owner,
                )
                .values(
                    fingerprint=record.fingerprint,
                    state="in_progress",
                    owner=record.owner,
                    response_status=None,
                    response_headers=None,
                    response_body=None,
                    created_at_us=record.created_at_us,
                    expires_at_us=record.expires_at_us,
                )
            )
        return bool(result.rowcount)

    async def complete_idempotency(
        self,
        record: IdempotencyRecord,
        *,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> bool:
        """Store the response of a claimed request; False if the claim was lost."""
        i = idempotency_keys.c
        async with self.db.transaction() as conn:
            result = await conn.execute(
                idempotency_keys.update()
                .where(
                    i.tenant_id == record.tenant_id,
                    i.key == record.key,
                    i.owner == record.owner,
                )
                .values(
                    state="completed",
                    response_status=status,
                    response_headers=json.dumps(headers, sort_keys=True),
                    response_body=body,
                )
            )
        return bool(result.rowcount)

    async def release_idempotency(self, record: IdempotencyRecord) -> None:
        """Delete a claim whose request failed, so the client may retry."""
        i = idempotency_keys.c
        async with self.db.transaction() as conn:
            await conn.execute(
                idempotency_keys.delete().where(
                    i.tenant_id == record.tenant_id,
                    i.key == record.key,
                    i.owner == record.owner,
                )
            )

    async def purge_expired_idempotency(self, now_us: int) -> int:
        """Delete expired records; return how many."""
        async with self.db.transaction() as conn:
            result = await conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.expires_at_us <= now_us)
            )
        return int(result.rowcount)
