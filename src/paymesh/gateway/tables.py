"""The gateway's tables (tenants, API clients, signing keys, idempotency records, the
append-only audit log, the console's users and sessions) and how a row becomes a record
of :mod:`paymesh.gateway.domain` (or of the console's users) and back. The queries are
in store.py."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any, TypeVar

import sqlalchemy as sa

from paymesh.gateway.console.users import ConsoleSession, ConsoleUser, Role
from paymesh.gateway.domain import ApiClient, AuditEntry, IdempotencyRecord, SigningKey, Tenant

__all__ = [
    "api_clients",
    "audit_log",
    "audit_row",
    "client_row",
    "console_role_policies",
    "console_sessions",
    "console_users",
    "idempotency_keys",
    "metadata",
    "signing_keys",
    "tenants",
    "to_audit",
    "to_client",
    "to_console_session",
    "to_console_user",
    "to_key",
    "to_record",
    "to_tenant",
]

Row = sa.Row[tuple[object, ...]]
_Record = TypeVar("_Record")

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


# The console's users and their signed-in browsers (gateway/console).
console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=True),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("must_change_password", sa.Boolean, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("failed_attempts", sa.Integer, nullable=False),
    sa.Column("locked_until_us", sa.BigInteger, nullable=True),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    # The second factor: the TOTP secret, sealed (AES-GCM under the gateway's secret
    # key), and the last time step accepted (a code is never accepted twice).
    sa.Column("totp_secret", sa.Text, nullable=True),
    sa.Column("totp_last_step", sa.BigInteger, nullable=True),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the cookie's token
    sa.Column(
        "user_id", sa.String(64), sa.ForeignKey("console_users.id"), nullable=False, index=True
    ),
    sa.Column("tenant_id", sa.String(64), nullable=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("last_seen_at_us", sa.BigInteger, nullable=False),
    # False until the user's second factor is given (when it has one).
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.true()),
    # A TOTP secret being enrolled from this browser, sealed.
    sa.Column("totp_pending", sa.Text, nullable=True),
)

# Which roles must sign in with a second factor (a row per role an admin has set).
console_role_policies = sa.Table(
    "console_role_policies",
    metadata,
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("totp_required", sa.Boolean, nullable=False),
)


def _from_row(cls: type[_Record], row: Row, **converted: Any) -> _Record:
    """A record of `cls` from the row's columns of the same names (`converted`: those
    whose column holds another form)."""
    m = row._mapping
    names = (f.name for f in fields(cls))  # type: ignore[arg-type]
    return cls(**{n: m[n] for n in names if n not in converted}, **converted)


def to_tenant(row: Row) -> Tenant:
    """A tenant from its row."""
    return _from_row(Tenant, row)


def to_key(row: Row) -> SigningKey:
    """A signing key from its row."""
    return _from_row(SigningKey, row)


def to_client(row: Row) -> ApiClient:
    """An API client from its row (its scopes are stored space-separated)."""
    return _from_row(ApiClient, row, scopes=frozenset(row._mapping["scopes"].split()))


def client_row(client: ApiClient) -> dict[str, Any]:
    """The row of an API client."""
    return {**asdict(client), "scopes": " ".join(sorted(client.scopes))}


def to_audit(row: Row) -> AuditEntry:
    """An audit entry from its row (its details are stored as JSON)."""
    return _from_row(AuditEntry, row, details=json.loads(row._mapping["details"]))


def audit_row(entry: AuditEntry) -> dict[str, Any]:
    """The row of an audit entry: the free-text columns cut to their size, details as JSON."""
    return {
        **asdict(entry),
        "actor": entry.actor[:200],
        "target": entry.target[:200] if entry.target else None,
        "source": entry.source[:200],
        "details": json.dumps(entry.details, sort_keys=True, default=str),
    }


def to_record(row: Row) -> IdempotencyRecord:
    """An idempotency record from its row (the response's headers are stored as JSON)."""
    m = row._mapping
    return _from_row(
        IdempotencyRecord,
        row,
        response_headers=json.loads(m["response_headers"]) if m["response_headers"] else None,
        response_body=bytes(m["response_body"]) if m["response_body"] is not None else None,
    )


def to_console_user(row: Row) -> ConsoleUser:
    """A console user from its row."""
    m = row._mapping
    return _from_row(
        ConsoleUser,
        row,
        role=Role(m["role"]),
        must_change_password=bool(m["must_change_password"]),
        disabled=bool(m["disabled"]),
    )


def to_console_session(row: Row) -> ConsoleSession:
    """A console session from its row."""
    return _from_row(ConsoleSession, row, verified=bool(row._mapping["verified"]))
