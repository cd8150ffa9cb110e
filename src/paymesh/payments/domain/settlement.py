"""Settlement: what each merchant account is owed up to a cutoff, and the payouts that pay it.

A **settlement item** is one thing that changes what a merchant is owed: a
payment's capture (its gross captured amount, less the capture's fee) or a
refund (given back in full; fees are not returned). Each item belongs to
exactly one run: a run *claims* every item of its tenant and currency that
was final at or before its cutoff and that no earlier run claimed, so no
item is in two runs (the claim is unique per item) and none is in none (an
item that commits late, with a time before a cutoff already passed, is
claimed by the next run).

A **run**'s lines are one per merchant account that had items or money
carried in::

    net = gross - refunds - fees + carried_in

A positive net is paid out (one payout per line, its id derived from the
run and the account, so a run resumed pays each line once), unless the
account has no bank details, in which case it is carried forward, like a
negative net (refunds exceeding captures), which is never paid out: the next
run of the account's tenant and currency starts from it (``carried_in``).
So is the net of a line whose payout failed or which the bank returned: the
next run carries it in, once (the line's status then says so).

Only merchant accounts are settled: a capture paid to another account is
claimed (seen once) but settles nothing.

Runs of a tenant and currency follow one another: a cutoff earlier than the
last run's is refused; the same cutoff again answers the same run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from paymesh.payments.errors import CutoffBeforeLastRun, InvalidRequest

__all__ = [
    "CARRIED",
    "BankDetails",
    "ItemType",
    "LineStatus",
    "RunStatus",
    "SettlementItem",
    "SettlementLine",
    "SettlementRun",
    "SettlementSettings",
    "batch_id_of",
    "carried_out",
    "lines_of",
    "payout_id_of",
    "run_id_of",
    "validate_cutoff",
]


class ItemType(StrEnum):
    """What a settlement item is."""

    CAPTURE = "capture"
    REFUND = "refund"


class LineStatus(StrEnum):
    """What became of a line's net."""

    # Paid out: its payout is on its way or done (the payout's own status says which).
    PAYOUT = "payout"
    # Positive, waiting for the run's approval.
    AWAITING_APPROVAL = "awaiting_approval"
    # Not paid: negative (refunds exceeded captures) or zero; carried into the next run.
    CARRIED_FORWARD = "carried_forward"
    # Positive, but the account has no bank details to pay to: carried into the next run.
    NO_BANK_ACCOUNT = "no_bank_account"
    # Positive, but the bank returned a payout to the account's bank details: carried into
    # the next run until the merchant's bank details change (never paid there again).
    BANK_ACCOUNT_RETURNED = "bank_account_returned"
    # Its payout failed, or the bank returned it: its net was carried into a later run.
    PAYOUT_FAILED = "payout_failed"
    PAYOUT_RETURNED = "payout_returned"
    # The payments service refused its payout outright (e.g. the account is gone): the next
    # run carries its net in (the line then says payout_failed).
    PAYOUT_REFUSED = "payout_refused"


class RunStatus(StrEnum):
    """Where a run is."""

    PENDING_APPROVAL = "pending_approval"
    PAID_OUT = "paid_out"  # its positive lines became payouts (a batch)
    NOTHING_TO_PAY = "nothing_to_pay"


@dataclass(frozen=True)
class BankDetails:
    """Where a merchant is paid, as stored on its account."""

    iban: str
    bic: str
    name: str


@dataclass(frozen=True)
class SettlementItem:
    """A capture or a refund, as a run counts it (amounts in minor units, all positive)."""

    object_id: str  # the payment's id (a capture) or the refund's
    type: ItemType
    account_id: str  # the merchant: the payment's payee
    payment_id: str
    currency: str
    gross: int  # captured (a capture) or refunded (a refund)
    fee: int  # a capture's fee; 0 for a refund
    at_us: int  # when it became final
    transfer_ids: tuple[str, ...]  # the ledger transfers it sums

    @property
    def net(self) -> int:
        """What the item adds to (a capture) or takes from (a refund) the merchant's due."""
        return self.gross - self.fee if self.type is ItemType.CAPTURE else -self.gross


@dataclass(frozen=True)
class SettlementLine:
    """One merchant account's due in a run."""

    account_id: str
    gross: int
    refunds: int
    fees: int
    carried_in: int
    net: int
    status: LineStatus
    payout_id: str | None = None
    bank: BankDetails | None = None


@dataclass(frozen=True)
class SettlementRun:
    """A tenant's settlement of one currency up to a cutoff."""

    id: str
    tenant_id: str
    currency: str
    cutoff_us: int
    created_at_us: int
    status: RunStatus
    lines: tuple[SettlementLine, ...] = ()
    payout_batch_id: str | None = None
    approved_by: str = ""
    approved_at_us: int = 0
    items: tuple[SettlementItem, ...] = field(default=(), compare=False)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def run_id_of(tenant_id: str, currency: str, cutoff_us: int) -> str:
    """A run's id: the same cutoff of the same tenant and currency is the same run."""
    return f"sr_{_digest(tenant_id, currency, str(cutoff_us))}"


def payout_id_of(run_id: str, account_id: str) -> str:
    """The id of the payout of a run's line: one payout per line, however often asked."""
    return f"po_{_digest(run_id, account_id)}"


def batch_id_of(run_id: str) -> str:
    """The id of a run's payout batch (its bank file)."""
    return f"pb_{run_id.removeprefix('sr_')}"


def validate_cutoff(cutoff_us: int, now_us: int, last_cutoff_us: int | None) -> None:
    """Refuse a cutoff in the future, or before the tenant's last run of the currency."""
    if cutoff_us <= 0:
        raise InvalidRequest("cutoff must be after 1970-01-01T00:00:00Z")
    if cutoff_us > now_us:
        raise InvalidRequest("cutoff must not be in the future")
    if last_cutoff_us is not None and cutoff_us < last_cutoff_us:
        raise CutoffBeforeLastRun("cutoff is before the last settlement run's cutoff")


def lines_of(
    run_id: str,
    items: Iterable[SettlementItem],
    carried: Mapping[str, int],
    banks: Mapping[str, BankDetails | None],
    *,
    approval: bool,
    returned: Mapping[str, Iterable[str]] | None = None,
) -> tuple[SettlementLine, ...]:
    """The lines of run `run_id`: its `items` and what each account `carried` in, by account
    (sorted by account id); a positive net with bank details (`banks`) becomes a payout, or
    waits for the run's `approval` — unless the bank returned a payout to those details
    before (`returned`: the IBANs each account's payouts came back from)."""
    sums: dict[str, list[int]] = {a: [0, 0, 0] for a in carried}
    for item in items:
        gross_refunds_fees = sums.setdefault(item.account_id, [0, 0, 0])
        if item.type is ItemType.CAPTURE:
            gross_refunds_fees[0] += item.gross
            gross_refunds_fees[2] += item.fee
        else:
            gross_refunds_fees[1] += item.gross
    lines = []
    for account_id in sorted(sums):
        gross, refunds, fees = sums[account_id]
        carried_in = carried.get(account_id, 0)
        net = gross - refunds - fees + carried_in
        bank = banks.get(account_id)
        payout_id = None
        if net <= 0:
            status = LineStatus.CARRIED_FORWARD
        elif bank is None:
            status = LineStatus.NO_BANK_ACCOUNT
        elif bank.iban in set((returned or {}).get(account_id, ())):
            status = LineStatus.BANK_ACCOUNT_RETURNED
        else:
            payout_id = payout_id_of(run_id, account_id)
            status = LineStatus.AWAITING_APPROVAL if approval else LineStatus.PAYOUT
        lines.append(
            SettlementLine(
                account_id, gross, refunds, fees, carried_in, net, status, payout_id, bank
            )
        )
    return tuple(lines)


# The statuses of a line whose net the next run carries in.
CARRIED = (
    LineStatus.CARRIED_FORWARD,
    LineStatus.NO_BANK_ACCOUNT,
    LineStatus.BANK_ACCOUNT_RETURNED,
)


def carried_out(lines: Iterable[SettlementLine]) -> dict[str, int]:
    """What a run's lines carry into the next run, by account (only the lines not paid)."""
    return {line.account_id: line.net for line in lines if line.status in CARRIED and line.net}


@dataclass(frozen=True)
class SettlementSettings:
    """A tenant's settlement settings."""

    tenant_id: str
    requires_approval: bool = False
    schedule_time: str = ""
    time_zone: str = ""
    schedule_currencies: tuple[str, ...] = ()
    debtor: BankDetails | None = None
    updated_at_us: int = 0
