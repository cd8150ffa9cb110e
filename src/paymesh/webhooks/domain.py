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

from paymesh.contracts.events import PUBLIC_EVENT_TYPES, Event
from paymesh.webhooks.errors import InvalidRequest

__all__ = [
    "ALL_EVENTS",
    "ATTEMPT_OUTCOMES",
    "MAX_DESCRIPTION",
    "MAX_ROTATION_GRACE_S",
    "MAX_URL",
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
    "address_refusal",
    "after_attempt",
    "attempt_outcome",
    "backoff_s",
    "canonical_host",
    "delivery_id",
    "host_refusal",
    "is_public",
    "normalise_events",
    "numeric_ipv4",
    "pending_delivery",
    "validate_create",
    "validate_url",
    "wants",
]

ALL_EVENTS = "*"
MAX_URL = 2048
MAX_DESCRIPTION = 500
MAX_EVENTS = 50
MAX_ROTATION_GRACE_S = 7 * 24 * 3600
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
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


# What an attempt came to, as a metric label: a closed set.
ATTEMPT_OUTCOMES = (
    "delivered",  # a 2xx answer
    "http_3xx",  # not followed: a failure
    "http_4xx",
    "http_5xx",
    "http_other",  # 1xx or a status outside 100-599
    "timeout",
    "refused",  # the address is not allowed (private, loopback...)
    "connection_error",
    "error",  # the request could not be made, or the worker broke
)


def attempt_outcome(result: AttemptResult) -> str:
    """The outcome of an attempt, one of :data:`ATTEMPT_OUTCOMES`."""
    if result.succeeded:
        return "delivered"
    if result.error == "timeout":
        return "timeout"
    if result.error == "address_refused":
        return "refused"
    if result.error == "connection_error":
        return "connection_error"
    if result.error.startswith("http_"):
        hundreds = result.status_code // 100
        return f"http_{hundreds}xx" if hundreds in (3, 4, 5) else "http_other"
    return "error"


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
    """Refuse a URL we must not call: a bad scheme, credentials, an unsafe host.

    ``https`` is required in production, ``http`` is also allowed in
    development. A host that is refused without asking DNS (see
    :func:`host_refusal`) is refused here; the service also resolves a name
    before accepting it, and every delivery attempt checks again.
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
    if not allow_private:
        reason = host_refusal(parts.hostname)
        if reason is not None:
            raise InvalidRequest(f"url refused: host {parts.hostname!r} {reason}")


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a resolver reads in `host`, or None for a name.

    ``inet_aton`` (which ``getaddrinfo`` uses before DNS) and URL parsers in
    browsers accept more than dotted quads: 1 to 4 parts, each decimal, octal
    (a leading ``0``) or hex (``0x``), the last filling the remaining bytes.
    So ``2130706433``, ``0x7f.1``, ``127.1``, ``017700000001`` and
    ``0177.0.0.1`` are all 127.0.0.1, and ``0`` is 0.0.0.0. One trailing dot is
    accepted too (as browsers do), so that ``127.0.0.1.`` is not a way around.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if part[:2].lower() == "0x":
            digits, base = part[2:], 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if not part or (digits and not _digits_in(digits, base)):
            return None
        values.append(int(digits, base) if digits else 0)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _digits_in(digits: str, base: int) -> bool:
    allowed = "0123456789abcdef"[:base]
    return all(c in allowed for c in digits.lower())


def canonical_host(host: str) -> IpAddress | str:
    """The address a URL host stands for, or the name to resolve (lower case, no final dot).

    `host` is a URL's host as the HTTP client uses it (IPv6 with or without
    its brackets). Numeric IPv4 forms are read as :func:`numeric_ipv4` does.
    """
    host = host.strip("[]").lower()
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return host
    numeric = numeric_ipv4(host)
    if numeric is not None:
        return numeric
    return host.removesuffix(".")


# Names that never lead to a merchant on the internet: special-use domains
# (RFC 6761, RFC 6762, RFC 8375, ICANN's .internal) and the clouds' metadata names.
_LOCAL_SUFFIXES = ("localhost", "localdomain", "local", "internal", "home.arpa", "invalid")
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "instance-data"})


def host_refusal(host: str) -> str | None:
    """Why `host` is refused without asking DNS, or None if it may be (resolved and) called.

    Refused: an address :func:`address_allowed` refuses, in any numeric form;
    a scoped or malformed IPv6 literal; ``localhost`` and names under the
    special-use domains above; a cloud metadata name; and a name without a
    dot, which a resolver completes with the local search domains.
    """
    found = canonical_host(host)
    if not isinstance(found, str):
        return address_refusal(found)
    if "%" in found or ":" in found:
        return "is not a valid IPv6 address (scoped addresses are not called)"
    if found in _METADATA_NAMES:
        return "is a cloud metadata name"
    if any(found == s or found.endswith("." + s) for s in _LOCAL_SUFFIXES):
        return "is a local name"
    if "." not in found:
        return "is a single-label name (resolved through local search domains)"
    return None


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


def is_public(event: Event) -> bool:
    """Whether merchants may receive `event` (a public type of a known tenant)."""
    return event.type in PUBLIC_EVENT_TYPES and bool(event.tenant)


def pending_delivery(
    id_: str, endpoint_id: str, event_id: str, event_type: str, tenant_id: str, now_us: int
) -> Delivery:
    """A new delivery, not attempted yet, due at `now_us`."""
    return Delivery(
        id=id_,
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        tenant_id=tenant_id,
        status=DeliveryStatus.PENDING,
        attempts_count=0,
        created_at_us=now_us,
        next_attempt_at_us=now_us,
    )


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def address_allowed(ip: IpAddress) -> bool:
    """Whether a merchant URL may resolve to `ip`: a public unicast address only.

    See :func:`address_refusal` for what is refused.
    """
    return address_refusal(ip) is None


def address_refusal(ip: IpAddress) -> str | None:
    """Why `ip` is never called (e.g. ``"is a loopback address (127.0.0.1)"``), or None.

    Refused: loopback, private (RFC 1918, ULA fc00::/7, which holds fd00:ec2::254),
    link-local (169.254/16 with the cloud metadata address, fe80::/10),
    CGNAT 100.64/10, unspecified, multicast, reserved and documentation ranges,
    IPv4-mapped and NAT64 addresses whose IPv4 address is one of those, and
    6to4 and Teredo tunnel addresses.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried in IPv6 (mapped, NAT64) is judged as that address;
        # tunnels (6to4, Teredo) and scoped addresses are refused outright.
        inner = ip.ipv4_mapped
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            why = address_refusal(inner)
            return None if why is None else f"{why} carried in IPv6 ({ip})"
        if ip.sixtofour is not None or ip.teredo is not None:
            return f"is an IPv6 tunnel address ({ip})"
        if ip.scope_id:
            return f"is a scoped IPv6 address ({ip})"
    elif ip in _CGNAT:
        return f"is a carrier-grade NAT address ({ip})"
    kinds = (
        ("a loopback", ip.is_loopback),
        ("an unspecified", ip.is_unspecified),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
        ("a non-public", not ip.is_global),
    )
    for kind, refused in kinds:
        if refused:
            return f"is {kind} address ({ip})"
    return None


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
