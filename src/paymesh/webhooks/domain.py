"""The webhooks rules, pure: endpoints, which events they receive, which addresses
may be called, and what happens after each delivery attempt.

No I/O, no clock, no randomness here: times come in as Unix microseconds and
the jitter as a number in [0, 1) chosen by the caller.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

from paymesh.webhooks.errors import InvalidRequest

__all__ = [
    "ALL_EVENTS",
    "ENDPOINT_DISABLED",
    "MAX_DESCRIPTION",
    "MAX_ROTATION_GRACE_S",
    "MAX_URL",
    "PUBLIC_EVENT_TYPES",
    "AfterAttempt",
    "Attempt",
    "AttemptResult",
    "CreateEndpoint",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "EndpointStatus",
    "RetryPolicy",
    "address_allowed",
    "after_attempt",
    "backoff_s",
    "delivery_id",
    "normalise_events",
    "validate_create",
    "validate_url",
    "wants",
]

ALL_EVENTS = "*"
ENDPOINT_DISABLED = "webhook_endpoint.disabled"
# The public events: what the REST API documents and merchants may subscribe to.
PUBLIC_EVENT_TYPES = frozenset(
    {
        "payment.requires_capture",
        "payment.in_review",
        "payment.succeeded",
        "payment.canceled",
        "payment.failed",
        "refund.succeeded",
        "refund.failed",
        "topup.succeeded",
        "topup.failed",
        "payout.succeeded",
        "payout.failed",
        "transfer.succeeded",
        "transfer.failed",
        ENDPOINT_DISABLED,
    }
)
MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_EVENTS = 50
MAX_ROTATION_GRACE_S = 7 * 24 * 3600
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
MAX_ID = 64


class EndpointStatus(Enum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class DeliveryStatus(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class CreateEndpoint:
    """Register a URL for the tenant's events (the id is the caller's)."""

    id: str
    tenant_id: str
    url: str
    events: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Endpoint:
    """A merchant's URL and the events it wants (secrets are kept apart, sealed)."""

    id: str
    tenant_id: str
    url: str
    events: tuple[str, ...]
    description: str
    status: EndpointStatus
    created_at_us: int
    disabled_reason: str = ""
    previous_secret_expires_at_us: int | None = None
    failing_since_us: int | None = None
    deleted_at_us: int | None = None

    def same_request(self, cmd: CreateEndpoint) -> bool:
        """Whether `cmd` asks for exactly this endpoint (a retried create)."""
        return (self.tenant_id, self.url, self.events, self.description) == (
            cmd.tenant_id,
            cmd.url,
            cmd.events,
            cmd.description,
        )


@dataclass(frozen=True)
class Attempt:
    """One POST of a delivery: when, what came back, how long it took."""

    number: int
    started_at_us: int
    status_code: int
    latency_ms: int
    error: str


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one endpoint."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    tenant_id: str
    status: DeliveryStatus
    attempts_count: int
    created_at_us: int
    next_attempt_at_us: int
    first_attempt_at_us: int | None = None
    attempts: tuple[Attempt, ...] = field(default=())


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt gave: a status code (0 if none) and an error code ('' if 2xx)."""

    status_code: int
    error: str
    latency_ms: int

    @property
    def succeeded(self) -> bool:
        return not self.error and 200 <= self.status_code < 300


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again and when to give up (seconds)."""

    base_s: float
    max_delay_s: float
    window_s: float
    disable_after_s: float


@dataclass(frozen=True)
class AfterAttempt:
    """The state an attempt leaves behind."""

    status: DeliveryStatus
    next_attempt_at_us: int
    first_attempt_at_us: int
    # None: the endpoint is healthy again; otherwise when its failures began.
    failing_since_us: int | None
    disable_endpoint: bool


def validate_id(value: str, what: str) -> None:
    """An id is 1-64 characters of letters, digits, ``_`` and ``-``."""
    if not value or len(value) > MAX_ID or not set(value) <= _ID_CHARS:
        raise InvalidRequest(f"{what} must be 1-{MAX_ID} letters, digits, '_' or '-'")


def validate_url(url: str, *, environment: str, allow_private: bool) -> None:
    """Refuse a URL we must not call: a bad scheme, credentials, an unsafe literal address.

    ``https`` is required in production, ``http`` is also allowed in
    development. Host names are checked again, after DNS resolution, on every
    attempt; a literal IP address is refused here already.
    """
    if not url or len(url) > MAX_URL:
        raise InvalidRequest(f"url must be 1-{MAX_URL} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidRequest("url must be ASCII without spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"url is malformed: {exc}") from None
    allowed = ("https",) if environment == "production" else ("https", "http")
    if parts.scheme not in allowed:
        raise InvalidRequest(f"url scheme must be {' or '.join(allowed)}")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise InvalidRequest("url must not carry credentials (user:password@)")
    if not parts.hostname:
        raise InvalidRequest("url needs a host")
    if port == 0:
        raise InvalidRequest("url port must be 1-65535")
    if parts.fragment:
        raise InvalidRequest("url must not have a fragment")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    if not allow_private and not address_allowed(literal):
        raise InvalidRequest("url points at a private, loopback or reserved address")


def normalise_events(events: Iterable[str]) -> tuple[str, ...]:
    """The endpoint's event types, known and deduplicated, sorted; ``("*",)`` for all."""
    wanted = set(events)
    if not wanted:
        raise InvalidRequest("events must name at least one event type, or '*'")
    if len(wanted) > MAX_EVENTS:
        raise InvalidRequest(f"at most {MAX_EVENTS} event types")
    unknown = sorted(wanted - PUBLIC_EVENT_TYPES - {ALL_EVENTS})
    if unknown:
        raise InvalidRequest(f"unknown event types: {', '.join(unknown)[:200]}")
    if ALL_EVENTS in wanted:
        return (ALL_EVENTS,)
    return tuple(sorted(wanted))


def validate_create(cmd: CreateEndpoint, *, environment: str, allow_private: bool) -> None:
    """Refuse a malformed CreateEndpoint (`cmd.events` already normalised)."""
    validate_id(cmd.id, "id")
    validate_url(cmd.url, environment=environment, allow_private=allow_private)
    if len(cmd.description) > MAX_DESCRIPTION:
        raise InvalidRequest(f"description must be at most {MAX_DESCRIPTION} characters")


def wants(endpoint: Endpoint, event_type: str) -> bool:
    """Whether `endpoint` is to receive events of `event_type`."""
    return ALL_EVENTS in endpoint.events or event_type in endpoint.events


def delivery_id(endpoint_id: str, event_id: str) -> str:
    """The id of the one delivery of `event_id` to `endpoint_id` (a redelivery finds it)."""
    digest = hashlib.sha256(f"{endpoint_id}\x00{event_id}".encode()).hexdigest()
    return f"dlv_{digest[:40]}"


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a merchant URL may resolve to `ip`: a public unicast address only.

    Refused: loopback, private (RFC 1918, ULA fc00::/7, which holds fd00:ec2::254),
    link-local (169.254/16 with the cloud metadata address, fe80::/10),
    CGNAT 100.64/10, unspecified, multicast, reserved and documentation ranges,
    IPv4-mapped and NAT64 addresses whose IPv4 address is one of those, and
    6to4 and Teredo tunnel addresses.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried in IPv6 (mapped, NAT64) is judged as that address;
        # tunnels (6to4, Teredo) and scoped addresses are refused outright.
        if ip.ipv4_mapped is not None:
            return address_allowed(ip.ipv4_mapped)
        if ip in _NAT64:
            return address_allowed(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None or ip.teredo is not None or ip.scope_id:
            return False
    elif ip in _CGNAT:
        return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_unspecified
    )


def backoff_s(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    """The wait before attempt ``attempt + 1``: full jitter over an exponential step.

    The step is ``base * 2**(attempt-1)`` capped at ``max_delay_s``; the wait is a
    uniform share of it (`jitter` in [0, 1)), so retries of many deliveries spread.
    """
    step = min(policy.max_delay_s, policy.base_s * 2.0 ** min(attempt - 1, 62))
    return step * min(max(jitter, 0.0), 1.0)


def after_attempt(
    delivery: Delivery,
    result: AttemptResult,
    *,
    started_at_us: int,
    now_us: int,
    endpoint_enabled: bool,
    failing_since_us: int | None,
    policy: RetryPolicy,
    jitter: float,
) -> AfterAttempt:
    """The delivery's and the endpoint's state after attempt ``delivery.attempts_count + 1``.

    A success delivers and heals the endpoint. A failure schedules the next
    attempt after :func:`backoff_s` unless that falls outside the retry window
    (counted from the first attempt) or the endpoint is no longer enabled; an
    endpoint failing continuously for ``disable_after_s`` is to be disabled.
    """
    first = delivery.first_attempt_at_us or started_at_us
    if result.succeeded:
        return AfterAttempt(DeliveryStatus.SUCCEEDED, now_us, first, None, False)
    since = started_at_us if failing_since_us is None else failing_since_us
    disable = endpoint_enabled and now_us - since >= policy.disable_after_s * 1_000_000
    wait_us = int(backoff_s(delivery.attempts_count + 1, policy, jitter) * 1_000_000)
    next_at = now_us + wait_us
    give_up = disable or not endpoint_enabled or next_at > first + policy.window_s * 1_000_000
    status = DeliveryStatus.FAILED if give_up else DeliveryStatus.PENDING
    return AfterAttempt(status, next_at, first, since, disable)
