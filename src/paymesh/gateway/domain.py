"""The gateway's rules, pure: the scopes, token claims, idempotency
decisions, entry signs and ids derived from an Idempotency-Key.

No I/O, no clock, no randomness: callers pass the time and the random parts in.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACCOUNTS_READ",
    "ACCOUNTS_WRITE",
    "ADMIN",
    "ALGORITHMS",
    "ALL_SCOPES",
    "NON_ADMIN_SCOPES",
    "PAYMENTS_READ",
    "PAYMENTS_WRITE",
    "REQUIRED_CLAIMS",
    "RISK_ADMIN",
    "SETTLEMENT_READ",
    "SETTLEMENT_WRITE",
    "TOKEN_TYPE",
    "UPSTREAM_STATUS",
    "WEBHOOKS_WRITE",
    "ApiClient",
    "AuditEntry",
    "IdempotencyDecision",
    "IdempotencyRecord",
    "InvalidScope",
    "SigningKey",
    "Tenant",
    "build_claims",
    "decide_idempotency",
    "derive_id",
    "entry_amount",
    "entry_status",
    "fingerprint",
    "format_scope",
    "grant_scopes",
    "parse_scope",
    "upstream_status",
]

# --- scopes -----------------------------------------------------------------

ACCOUNTS_READ = "accounts:read"
ACCOUNTS_WRITE = "accounts:write"
PAYMENTS_READ = "payments:read"
PAYMENTS_WRITE = "payments:write"
WEBHOOKS_WRITE = "webhooks:write"
RISK_ADMIN = "risk:admin"
SETTLEMENT_READ = "settlement:read"
SETTLEMENT_WRITE = "settlement:write"
ADMIN = "admin"

ALL_SCOPES: Mapping[str, str] = {
    ACCOUNTS_READ: "Read accounts, balances and ledger entries.",
    ACCOUNTS_WRITE: "Open accounts and set their bank details.",
    PAYMENTS_READ: "Read payments, refunds, top-ups, payouts, transfers and events.",
    PAYMENTS_WRITE: "Create, capture and cancel payments; refunds; top-ups; payouts; transfers.",
    WEBHOOKS_WRITE: "Manage webhook endpoints.",
    RISK_ADMIN: "Manage risk rules, lists and reviews.",
    SETTLEMENT_READ: "Read settlement runs, payout batches, bank statements and breaks.",
    SETTLEMENT_WRITE: (
        "Run and approve settlements, set settlement settings, import bank statements and"
        " resolve reconciliation breaks."
    ),
    ADMIN: "Operator: manage tenants and their API clients.",
}
NON_ADMIN_SCOPES = frozenset(s for s in ALL_SCOPES if s != ADMIN)


class InvalidScope(ValueError):
    """A requested scope is unknown or not granted to the client."""


def parse_scope(text: str | None) -> frozenset[str]:
    """Space-separated scopes (RFC 6749 §3.3) as a set."""
    return frozenset((text or "").split())


def format_scope(scopes: Iterable[str]) -> str:
    """Scopes as one space-separated string, sorted so it is stable."""
    return " ".join(sorted(scopes))


def grant_scopes(requested: str | None, allowed: frozenset[str]) -> frozenset[str]:
    """The scopes a token gets: all the client's, or the requested subset of them."""
    wanted = parse_scope(requested)
    if not wanted:
        return allowed
    unknown = wanted - allowed
    if unknown:
        raise InvalidScope(f"scope not granted to this client: {format_scope(unknown)}")
    return wanted


# --- tokens -----------------------------------------------------------------

TOKEN_TYPE = "at+jwt"  # noqa: S105 - the RFC 9068 access-token type
ALGORITHMS = ("EdDSA",)
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


def build_claims(
    *,
    client_id: str,
    tenant_id: str,
    scopes: Iterable[str],
    issuer: str,
    audience: str,
    now_s: int,
    ttl_s: int,
    jti: str,
) -> dict[str, Any]:
    """The claims of one access token."""
    return {
        "iss": issuer,
        "aud": audience,
        "sub": client_id,
        "tenant": tenant_id,
        "scope": format_scope(scopes),
        "iat": now_s,
        "exp": now_s + ttl_s,
        "jti": jti,
    }


# --- tenants, clients, keys, the audit log -----------------------------------


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


# --- idempotency ------------------------------------------------------------


class IdempotencyDecision(enum.Enum):
    """What to do with a request that carries an Idempotency-Key."""

    PROCEED = "proceed"  # nobody holds the key: claim it and run
    TAKE_OVER = "take_over"  # a stale or expired record: replace it and run
    REPLAY = "replay"  # answer the stored response
    REUSED = "reused"  # the key was used for another request
    IN_PROGRESS = "in_progress"  # the first request is still running


@dataclass(frozen=True)
class IdempotencyRecord:
    """A stored Idempotency-Key and, once completed, the response it produced."""

    tenant_id: str
    key: str
    fingerprint: str
    state: str  # "in_progress" or "completed"
    owner: str
    created_at_us: int
    expires_at_us: int
    response_status: int | None = None
    response_headers: Mapping[str, str] | None = None
    response_body: bytes | None = None


def fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 of the method, the path and the canonical JSON body (raw bytes if not JSON)."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def decide_idempotency(
    record: IdempotencyRecord | None, request_fingerprint: str, *, now_us: int, stale_after_us: int
) -> IdempotencyDecision:
    """Decide how to answer a request given the record stored under its key.

    An in-progress record older than `stale_after_us` belongs to a request
    that died (a crash): it may be taken over, which is safe because the
    ids of what it created are derived from the key.
    """
    if record is None:
        return IdempotencyDecision.PROCEED
    if record.expires_at_us <= now_us:
        return IdempotencyDecision.TAKE_OVER
    if record.fingerprint != request_fingerprint:
        return IdempotencyDecision.REUSED
    if record.state == "completed":
        return IdempotencyDecision.REPLAY
    if now_us - record.created_at_us >= stale_after_us:
        return IdempotencyDecision.TAKE_OVER
    return IdempotencyDecision.IN_PROGRESS


def derive_id(prefix: str, *, tenant_id: str, key: str, path: str) -> str:
    """A deterministic object id for what a keyed request creates, e.g. ``pay_…``.

    A retry of the same request (same tenant, key and path) reaches the
    service with the same id, and the service answers the object it made.
    """
    digest = hashlib.sha256("\x00".join((tenant_id, key, path)).encode()).digest()[:16]
    return f"{prefix}_{base64.b32encode(digest).decode().rstrip('=').lower()}"


# --- accounts ---------------------------------------------------------------


def entry_amount(side: str, amount: int) -> int:
    """An entry's amount from the account's side: credits positive, debits negative."""
    if side == "credit":
        return amount
    if side == "debit":
        return -amount
    raise ValueError(f"unknown entry side: {side!r}")


def entry_status(*, pending: bool, post_pending: bool, void_pending: bool) -> str:
    """The status of the transfer behind an entry: a hold, a posting, or a release."""
    if pending:
        return "pending"
    if void_pending:
        return "voided"
    return "posted"


# How a service's gRPC status reaches the client as an HTTP status.
UPSTREAM_STATUS: Mapping[str, int] = {
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "ABORTED": 409,
    "INVALID_ARGUMENT": 422,
    "OUT_OF_RANGE": 422,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 503,
}


def upstream_status(grpc_status_name: str) -> int:
    """The HTTP status for a service's gRPC status name (anything else: 502)."""
    return UPSTREAM_STATUS.get(grpc_status_name, 502)
