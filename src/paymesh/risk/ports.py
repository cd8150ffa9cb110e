"""The ports risk's use cases depend on: where decisions, reviews and lists are kept,
the features the rules read, the rules in force and the clock; :class:`Deps` bundles them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from paymesh.contracts.events import Event
from paymesh.platform.clock import Clock
from paymesh.risk.domain import (
    DecidePayment,
    Decision,
    FeatureNeeds,
    Features,
    ListEntry,
    PaymentUpdate,
    Review,
    ReviewStatus,
    RuleSet,
)
from paymesh.risk.locks import VelocityLocks

__all__ = [
    "DecisionStore",
    "Deps",
    "FeatureStore",
    "ListStore",
    "ReviewStore",
    "RiskStore",
]

DEFAULT_REVIEW_TIMEOUT_S = 24 * 3600.0


class DecisionStore(Protocol):
    """Decisions by payment id; the first one stored for a payment is final."""

    async def get(self, payment_id: str) -> Decision | None:
        """The decision for `payment_id`, whoever's it is, or None."""
        ...

    async def add(
        self,
        decision: Decision,
        event: Event,
        review: Review | None = None,
        *,
        velocity_at_us: int | None = None,
    ) -> Decision:
        """Store `decision` with `event` (and the review it opens) unless one exists;
        return the stored decision. With `velocity_at_us`, also put the payment in the
        velocity windows (stores whose database holds them)."""
        ...


class ReviewStore(Protocol):
    """The review queue."""

    async def get_review(self, payment_id: str) -> Review | None:
        """The review of `payment_id`, whoever's it is, or None."""
        ...

    async def list_reviews(
        self, tenant_id: str, status: ReviewStatus, *, limit: int, starting_after: str
    ) -> tuple[list[Review], bool]:
        """A page of the tenant's reviews in `status`, by payment id; and whether more follow."""
        ...

    async def resolve_review(self, resolved: Review, event: Event) -> bool:
        """Store `resolved` with `event` if the review is still open; False otherwise."""
        ...

    async def due_reviews(self, now_us: int, *, limit: int) -> list[Review]:
        """Open reviews due at or before `now_us`, oldest first."""
        ...


class ListStore(Protocol):
    """The tenants' block and allow lists."""

    async def add_entry(self, entry: ListEntry) -> ListEntry:
        """Add `entry`; an existing entry is kept as it is and returned."""
        ...

    async def remove_entry(self, tenant_id: str, list_name: str, value: str) -> bool:
        """Remove an entry; False when there was none."""
        ...

    async def list_entries(
        self, tenant_id: str, list_name: str, *, limit: int, starting_after: str
    ) -> tuple[list[ListEntry], bool]:
        """A page of one list (every list when `list_name` is empty), by list and value."""
        ...

    async def matches(
        self, tenant_id: str, pairs: Iterable[tuple[str, str]]
    ) -> frozenset[tuple[str, str]]:
        """Which (list, value) `pairs` are entries of the tenant's lists (one query)."""
        ...


class RiskStore(DecisionStore, ReviewStore, ListStore, Protocol):
    """Decisions, reviews and lists, kept together (one database)."""


@dataclass(frozen=True)
class FeatureQuery:
    """What one decision asks of the feature store: the windows and history `needs`
    names for `payment`, as of `now_us`; with `record`, also put the payment in its
    windows; with `lists`, which (list, value) pairs are listed."""

    payment: DecidePayment
    needs: FeatureNeeds
    now_us: int
    record: bool = False
    lists: Sequence[tuple[str, str]] = ()


class FeatureStore(Protocol):
    """Velocity windows and payer history, for the rules and from the events."""

    # True when the decision store writes the velocity entry in the decision's own
    # transaction (the features live in the same database): one commit, not two.
    @property
    def records_with_decisions(self) -> bool: ...

    @property
    def records_with_reads(self) -> bool: ...

    # True when :meth:`read` also reads the list entries (the lists live in the
    # same database): one read transaction per decision, not two.
    @property
    def reads_lists(self) -> bool: ...

    async def read(self, query: FeatureQuery) -> Features:
        """The windows and history `needs` asks for; with `record` (stores that
        record with reads), also put the payment in its windows in the same atomic
        step; with `lists` (stores that read lists), which (list, value) pairs are
        entries of the payment's tenant's lists."""
        ...

    async def forget(self, payment: DecidePayment) -> None:
        """Take the payment out of its windows (recorded with the read, then declined)."""
        ...

    async def record(self, payment: DecidePayment, *, at_us: int) -> None:
        """Put the payment in its velocity windows unless it is there already."""
        ...

    async def apply(self, event_id: str, update: PaymentUpdate, *, now_us: int) -> bool:
        """Apply a payment event's effect unless `event_id` was applied; True if applied."""
        ...

    async def prune(self, *, before_us: int) -> int:
        """Forget velocity entries older than `before_us`; how many were dropped."""
        ...


@dataclass(frozen=True)
class Deps:
    """What the risk use cases need."""

    store: RiskStore
    # Asked on every call, so a reloaded rule set takes effect at once.
    rules: Callable[[], RuleSet]
    clock: Clock
    features: FeatureStore | None = None
    # An open review not resolved within this gets the default resolution.
    review_timeout_s: float = DEFAULT_REVIEW_TIMEOUT_S
    locks: VelocityLocks = field(default_factory=VelocityLocks)
