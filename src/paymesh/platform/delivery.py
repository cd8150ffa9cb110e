"""What a bus does with a record its consumer cannot handle: parse strictly, retry with
backoff, dead-letter what keeps failing, and keep consumers alive and reported.

Both buses share this policy (``docs/kafka-dlq.md`` explains it):

- a record that cannot be parsed as an event envelope is dead-lettered at once
  (parsing again gives the same answer);
- a handler that raises is retried with exponential backoff; after
  ``max_attempts`` failed attempts the record is dead-lettered, unless the last
  error is clearly infrastructure (a database, Redis or peer that cannot be
  reached): then it is retried without limit, because the record is not at fault
  and dead-lettering every record that arrives during an outage would empty the
  topic into the dead-letter queue;
- a consumer that dies for any other reason is restarted with backoff, and
  :class:`ConsumerHealth` reports it unhealthy meanwhile.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, dataclass, fields
from typing import Any

import grpc
from sqlalchemy import exc as sa_exc

from paymesh.contracts.events import Event
from paymesh.platform.unavailable import is_unavailable

__all__ = [
    "DEAD_LETTER_HEADER_PREFIX",
    "ConsumerHealth",
    "DeliveryPolicy",
    "MalformedEvent",
    "dead_letter_topic",
    "describe_error",
    "is_infrastructure",
    "parse_envelope",
    "parse_event",
]

DEAD_LETTER_SUFFIX = ".dlq"
# Every header the dead-letter step adds starts with this; a replay removes them.
DEAD_LETTER_HEADER_PREFIX = "dlq_"
_MAX_ERROR_CHARS = 500


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of `topic`: ``<topic>.dlq`` (namespaced like `topic` on Kafka)."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


class MalformedEvent(ValueError):
    """A record that is not a CloudEvents envelope paymesh can read."""


# The envelope's attributes: the required ones, and every one that must be a string.
_REQUIRED = tuple(
    f.name for f in fields(Event) if f.default is MISSING and f.default_factory is MISSING
)
# (Not traceparent: tracing is optional, and Event.from_json drops one that is malformed.)
_STRINGS = tuple(f.name for f in fields(Event) if f.name not in ("data", "traceparent"))


def parse_event(raw: bytes | None) -> Event:
    """The event in `raw`, or :class:`MalformedEvent` saying why it is not one.

    Stricter than :meth:`Event.from_json`: every envelope attribute must be
    present and a string, and ``data`` an object, so a handler never receives a
    half-formed event that would fail it on every retry.
    """
    if not raw:
        raise MalformedEvent("empty record value")
    try:
        obj: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    return parse_envelope(obj)


def parse_envelope(obj: Any) -> Event:
    """The event the envelope `obj` (parsed JSON) is, or :class:`MalformedEvent`:
    every attribute paymesh requires present and a string, ``data`` an object."""
    if not isinstance(obj, dict):
        raise MalformedEvent(f"not a JSON object but {type(obj).__name__}")
    missing = [name for name in _REQUIRED if name not in obj]
    if missing:
        raise MalformedEvent(f"missing attributes: {', '.join(missing)}")
    wrong = [name for name in _STRINGS if name in obj and not isinstance(obj[name], str)]
    if wrong:
        raise MalformedEvent(f"attributes that are not strings: {', '.join(wrong)}")
    if not isinstance(obj.get("data", {}), dict):
        raise MalformedEvent("data is not a JSON object")
    return Event.from_dict(obj)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How often and how patiently a failing record is retried."""

    # Failed attempts after which a record is dead-lettered (infrastructure errors excepted).
    max_attempts: int = 10
    # The wait after the first failure; it doubles after each one, up to backoff_max_s.
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    # The wait before a dead consumer is started again (doubling, up to backoff_max_s).
    restart_backoff_s: float = 1.0

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempts - 1)))

    def gives_up(self, attempts: int, error: BaseException) -> bool:
        """Whether a record that failed `attempts` times, the last with `error`, is
        dead-lettered now."""
        return attempts >= self.max_attempts and not is_infrastructure(error)


_INFRA_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def is_infrastructure(error: BaseException) -> bool:
    """Whether `error` (or what caused it) says a dependency is unreachable, not that
    the record is bad: a database, Redis or a peer service that is down or too slow."""
    if is_unavailable(error):
        return True
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, grpc.aio.AioRpcError) and current.code() in _INFRA_GRPC:
            return True
        current = current.__cause__ or current.__context__
    return False


_CREDENTIALS_IN_URL = re.compile(r"(\w+://)[^/@\s]+@")


def describe_error(error: BaseException) -> tuple[str, str]:
    """(exception type, message) of `error`, safe to store beside a dead letter.

    A SQL error is described by the driver's message alone (never the statement
    or its parameters), credentials in URLs are removed, and the message is cut
    to a bounded length.
    """
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    cause: BaseException = error
    if isinstance(error, sa_exc.StatementError) and error.orig is not None:
        cause = error.orig
    message = _CREDENTIALS_IN_URL.sub(r"\1[redacted]@", str(cause))
    return kind, message[:_MAX_ERROR_CHARS]


class ConsumerHealth:
    """Which consumers are running, which are dead (waiting to be restarted), and which
    have not been assigned their partitions yet (a Kafka consumer joining its group)."""

    def __init__(self) -> None:
        self._down: dict[tuple[str, str], str] = {}  # (group, consumer) -> its last error
        self._joining: set[tuple[str, str]] = set()

    def down(self, group: str, consumer: str, error: BaseException) -> None:
        """Record that `consumer` of `group` died with `error`."""
        self._down[(group, consumer)] = describe_error(error)[0]

    def joining(self, group: str, consumer: str) -> None:
        """Record that `consumer` of `group` (re)starts and waits for its assignment."""
        self._joining.add((group, consumer))

    def assigned(self, group: str, consumer: str) -> None:
        """Record that `consumer` of `group` was given its partitions (maybe none: a
        group with more members than partitions leaves some idle, and that is fine)."""
        self._joining.discard((group, consumer))

    def unready(self, *groups: str) -> list[str]:
        """Why the consumers of `groups` (of every group, when none are named) cannot
        work: "group/consumer: dead (error)" or "...: not assigned yet"; empty when they can."""
        found = [
            f"{group}/{consumer}: dead ({kind})"
            for (group, consumer), kind in self._down.items()
            if not groups or group in groups
        ]
        found += [
            f"{group}/{consumer}: not assigned yet"
            for group, consumer in sorted(self._joining)
            if (not groups or group in groups) and (group, consumer) not in self._down
        ]
        return found

    def up(self, group: str, consumer: str) -> None:
        """Record that `consumer` of `group` runs (again)."""
        self._down.pop((group, consumer), None)

    def healthy(self, *groups: str) -> bool:
        """True unless a consumer of `groups` (of any group, when none are named) is dead."""
        return not any(not groups or group in groups for group, _ in self._down)

    def dead(self) -> dict[str, str]:
        """The dead consumers ("group/consumer") and the type of error that ended each."""
        return {f"{group}/{consumer}": kind for (group, consumer), kind in self._down.items()}
