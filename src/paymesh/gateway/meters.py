"""The gateway's protections as metrics: 429s by limit, failed authentications by reason,
Idempotency-Key requests by outcome. Every label comes from the closed sets below."""

from __future__ import annotations

from prometheus_client import Counter

from paymesh.platform.metrics import AUTH_FAILURES, IDEMPOTENCY, RATE_LIMITED

__all__ = [
    "AUTH_REASONS",
    "IDEMPOTENCY_OUTCOMES",
    "LIMITS",
    "auth_failed",
    "idempotency",
    "rate_limited",
]

SERVICE = "gateway"

# Which limit refused a request with 429: a client's bucket (its bearer token's client
# id), the token endpoint's bucket (per client id, or per address without one), a
# budget of failed authentications (per address, per client id), admission of
# money-moving work, or the bounded pool that hashes client secrets.
LIMITS = ("client", "token", "auth_failures", "overloaded", "hashing", "other")
# Why an authentication failed: a bearer token missing, invalid (malformed, a bad
# signature, unknown key, wrong claims), expired or naming a revoked client; client
# credentials missing, malformed or wrong, or the client's revoked.
AUTH_REASONS = (
    "missing_token",
    "invalid_token",
    "expired",
    "revoked",
    "invalid_client",
    "client_revoked",
)
# What became of a request with an Idempotency-Key: it ran (first), its stored answer
# was replayed, the key was used for another request (conflict, 422), or the first
# request still runs (in_progress, 409).
IDEMPOTENCY_OUTCOMES = ("first", "replayed", "conflict", "in_progress")


def _children(metric: Counter, label: str, values: tuple[str, ...]) -> dict[str, Counter]:
    return {v: metric.labels(**{"service": SERVICE, label: v}) for v in values}


_LIMITED = _children(RATE_LIMITED, "limit", LIMITS)
_AUTH = _children(AUTH_FAILURES, "reason", AUTH_REASONS)
_IDEMPOTENCY = _children(IDEMPOTENCY, "outcome", IDEMPOTENCY_OUTCOMES)


def rate_limited(limit: str) -> None:
    """Count a 429 refused by `limit` (one of :data:`LIMITS`; anything else is "other")."""
    _LIMITED.get(limit, _LIMITED["other"]).inc()


def auth_failed(reason: str) -> None:
    """Count a failed authentication (`reason` is one of :data:`AUTH_REASONS`)."""
    _AUTH[reason].inc()


def idempotency(outcome: str) -> None:
    """Count a request with an Idempotency-Key (`outcome`: :data:`IDEMPOTENCY_OUTCOMES`)."""
    _IDEMPOTENCY[outcome].inc()
