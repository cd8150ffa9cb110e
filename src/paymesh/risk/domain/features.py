"""What the rules know beyond the payment itself: velocity windows, the payer's
history and list matches (pure data; adapters compute them).

Velocity: every approved or reviewed payment is an *entry* in the windows of
its payer, payee, device and IP, keyed by its payment id (so it counts once
however many events announce it). A window of ``window_s`` seconds at time
``now`` holds the entries with ``at > now - window_s`` (an entry exactly
``window_s`` old has left it). :class:`WindowStats` never includes the
payment being decided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from paymesh.risk.domain.model import DecidePayment

__all__ = [
    "AmountStats",
    "Dimension",
    "FeatureNeeds",
    "Features",
    "ListField",
    "PayerHistory",
    "PayerStats",
    "PaymentUpdate",
    "SucceededPayment",
    "WindowStats",
    "dimension_value",
    "list_field_value",
    "welford",
]


class Dimension(StrEnum):
    """Whose velocity a rule counts."""

    PAYER = "payer"
    PAYEE = "payee"
    DEVICE = "device"
    IP = "ip"


class ListField(StrEnum):
    """The payment fields a list rule looks up."""

    PAYER_ACCOUNT_ID = "payer_account_id"
    PAYEE_ACCOUNT_ID = "payee_account_id"
    IP = "ip"
    DEVICE_ID = "device_id"
    COUNTRY = "country"


def list_field_value(payment: DecidePayment, list_field: ListField) -> str:
    """The payment's value for a list rule's `list_field` ("" when unknown)."""
    match list_field:
        case ListField.PAYER_ACCOUNT_ID:
            return payment.payer_account_id
        case ListField.PAYEE_ACCOUNT_ID:
            return payment.payee_account_id
        case ListField.IP:
            return payment.context.ip
        case ListField.DEVICE_ID:
            return payment.context.device_id
        case ListField.COUNTRY:
            return payment.context.country


# The payment field that holds each dimension's value.
_DIMENSION_FIELD = {
    Dimension.PAYER: ListField.PAYER_ACCOUNT_ID,
    Dimension.PAYEE: ListField.PAYEE_ACCOUNT_ID,
    Dimension.DEVICE: ListField.DEVICE_ID,
    Dimension.IP: ListField.IP,
}


def dimension_value(payment: DecidePayment, dimension: Dimension) -> str:
    """The payment's value for `dimension` ("" when unknown)."""
    return list_field_value(payment, _DIMENSION_FIELD[dimension])


@dataclass(frozen=True)
class WindowStats:
    """Entries in one window before this payment: how many, and their sum in the
    payment's currency (entries in other currencies count but add nothing)."""

    count: int = 0
    amount: int = 0


@dataclass(frozen=True)
class AmountStats:
    """Welford's running mean and sum of squared deviations of a payer's amounts."""

    count: int
    mean: float
    m2: float

    @property
    def stddev(self) -> float:
        """The sample standard deviation (0 with fewer than two amounts)."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


def welford(stats: AmountStats | None, amount: int) -> AmountStats:
    """`stats` with one more amount."""
    if stats is None:
        return AmountStats(count=1, mean=float(amount), m2=0.0)
    count = stats.count + 1
    delta = amount - stats.mean
    mean = stats.mean + delta / count
    return AmountStats(count=count, mean=mean, m2=stats.m2 + delta * (amount - mean))


@dataclass(frozen=True)
class PayerHistory:
    """A payer's succeeded payments as risk learned them from events."""

    # When risk saw the payer's first succeeded payment (its event time).
    first_seen_us: int
    succeeded_count: int
    # The most frequent country of the succeeded payments ("" when none known).
    usual_country: str = ""
    # The amounts in the currency of the payment being decided, if any.
    amounts: AmountStats | None = None


@dataclass(frozen=True)
class FeatureNeeds:
    """What a rule set reads, so adapters fetch nothing else."""

    windows: frozenset[tuple[Dimension, int]] = frozenset()
    payer: bool = False
    lists: frozenset[tuple[str, ListField]] = frozenset()


@dataclass(frozen=True)
class Features:
    """Everything the rules read besides the payment."""

    now_us: int = 0
    windows: Mapping[tuple[Dimension, int], WindowStats] = field(default_factory=dict)
    payer: PayerHistory | None = None
    # (list name, value) pairs of the tenant's lists that hold this payment's values.
    lists: frozenset[tuple[str, str]] = frozenset()

    def window(self, dimension: Dimension, window_s: int) -> WindowStats:
        """The stats of one window (empty when not fetched)."""
        return self.windows.get((dimension, window_s), WindowStats())


@dataclass(frozen=True)
class SucceededPayment:
    """A payment that succeeded, as the history features see it (from its event)."""

    payment_id: str
    tenant_id: str
    payer_account_id: str
    currency: str
    # What actually moved: the captured amount, in minor units.
    amount: int
    at_us: int
    # From the decision risk made on it (events do not carry the context).
    country: str = ""


@dataclass(frozen=True)
class PaymentUpdate:
    """What a payment event means to the features.

    ``moved``: the payment went ahead (requires_capture, in_review, succeeded): its
    velocity entry must exist. ``dropped``: it failed or was canceled, the money did
    not move: its velocity entry is removed. ``succeeded`` also feeds the history.
    """

    payment_id: str
    tenant_id: str
    kind: str  # "moved" | "dropped" | "succeeded"
    # The facts of the payment (from risk's decision when there is one).
    payment: DecidePayment
    # When its velocity entry counts from.
    at_us: int
    succeeded: SucceededPayment | None = None


@dataclass(frozen=True)
class PayerStats:
    """One payer's succeeded payments in one currency."""

    tenant_id: str
    payer_account_id: str
    currency: str
    succeeded_count: int
    succeeded_amount: int
    last_event_at_us: int
