"""Reconciliation: each line of a bank statement matched to the ledger, and the breaks.

A statement's entries are matched one by one (pure: :func:`match_entry`):

- a debit (money out of the platform's bank account) with an ``EndToEndId``
  is a payout: ``matched`` when the payout exists, succeeded, is in the
  line's currency, within the amount tolerance and booked within the date
  tolerance of its creation; ``amount_mismatch`` when it is that payout but
  the amount differs; else ``unmatched_bank``. A payout an earlier line
  already booked is not matched twice (a double booking is
  ``unmatched_bank``), nor one whose absence an operator wrote off.
- a credit with a return reason code (``RtrInf/Rsn/Cd``) is a payout coming
  back: ``returned`` when it gives back the whole of a succeeded payout, in
  its currency, for the first time (the payout is then reversed in the
  ledger, once, by the payout-return saga); any other return is
  ``unmatched_bank``. A return is a break too: the operator sees the reason.
- any other credit is a top-up (money in), matched by its reference or
  ``EndToEndId`` = the top-up id; a debit without an ``EndToEndId`` is a
  top-up reversal, matched by reference = the top-up id.
- for the statement's period, every succeeded settlement payout that no
  statement matched is ``unmatched_ledger`` (the bank has not booked it).

Each result but ``matched`` is a **break**, queued for an operator, who
resolves it: ``match_to`` (names the object it is), ``write_off`` (posts the
difference to the tenant's suspense account) or ``ignore``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from paymesh.payments.errors import InvalidRequest

__all__ = [
    "BREAK_ACTIONS",
    "Candidate",
    "Entry",
    "Match",
    "Result",
    "Tolerance",
    "lookup_key",
    "match_entry",
    "suspense_account_id",
    "validate_resolution",
    "write_off_direction",
]

US_PER_DAY = 86_400_000_000


class Result(StrEnum):
    """What a statement line (or a ledger payout, for the period) came to."""

    MATCHED = "matched"
    AMOUNT_MISMATCH = "amount_mismatch"
    UNMATCHED_BANK = "unmatched_bank"
    UNMATCHED_LEDGER = "unmatched_ledger"
    RETURNED = "returned"


BREAK_ACTIONS = ("match_to", "write_off", "ignore")


@dataclass(frozen=True)
class Tolerance:
    """How far a bank line may differ from its ledger object and still match."""

    amount: int = 0  # minor units
    days: int = 3  # booking date after the object's creation


@dataclass(frozen=True)
class Entry:
    """A statement line, as matching sees it."""

    amount: int
    currency: str
    credit: bool
    booked_on_us: int  # the booking date's midnight, UTC
    end_to_end_id: str
    reference: str
    return_reason: str


@dataclass(frozen=True)
class Candidate:
    """A ledger object a line may be: a payout, a top-up or a top-up reversal."""

    kind: str  # "payout" | "topup" | "topup_reversal"
    id: str
    amount: int
    currency: str
    status: str
    created_at_us: int
    # A statement line already booked it (matched, or with another amount).
    already_matched: bool = False
    # The bank already returned it (a payout), by a line of this statement or an earlier one.
    already_returned: bool = False
    # The bank had not booked it, and an operator wrote that off (an unmatched_ledger break).
    written_off: bool = False


@dataclass(frozen=True)
class Match:
    """The result of one line, and the object it is (when known)."""

    result: Result
    object_kind: str = ""
    object_id: str = ""
    expected_amount: int = 0


def lookup_key(entry: Entry) -> tuple[str, str]:
    """The kind of object a line may be, and the id to look it up by ("" : none)."""
    if entry.credit and entry.return_reason:
        return "payout", entry.end_to_end_id
    if not entry.credit and entry.end_to_end_id:
        return "payout", entry.end_to_end_id
    if entry.credit:
        return "topup", entry.end_to_end_id or entry.reference
    return "topup_reversal", entry.reference


def match_entry(entry: Entry, found: Candidate | None, tolerance: Tolerance) -> Match:
    """What `entry` is, given the object its :func:`lookup_key` found (None: nothing)."""
    if found is None or found.status != "succeeded":
        return Match(Result.UNMATCHED_BANK)
    unmatched = Match(Result.UNMATCHED_BANK, found.kind, found.id, found.amount)
    if entry.currency != found.currency:
        return unmatched  # not this object: money in another currency
    if entry.credit and entry.return_reason:
        # A return gives back the whole payout, once; anything else is money the ledger
        # does not know (a second return, a partial one): for the operator.
        if found.already_returned or abs(entry.amount - found.amount) > tolerance.amount:
            return unmatched
        return Match(Result.RETURNED, found.kind, found.id, found.amount)
    if found.already_matched or found.written_off:
        return unmatched
    days = (entry.booked_on_us - found.created_at_us) / US_PER_DAY
    if not -1 < days <= tolerance.days:
        return Match(Result.UNMATCHED_BANK, found.kind, found.id, found.amount)
    if abs(entry.amount - found.amount) > tolerance.amount:
        return Match(Result.AMOUNT_MISMATCH, found.kind, found.id, found.amount)
    return Match(Result.MATCHED, found.kind, found.id, found.amount)


def suspense_account_id(tenant_id: str, currency: str) -> str:
    """The tenant's account that takes reconciliation write-offs, per currency."""
    return f"acct_suspense_{tenant_id}_{currency.lower()}"


def write_off_direction(result: Result, credit: bool, bank_amount: int, ledger_amount: int) -> int:
    """How much more the bank holds than the ledger says (negative: less), which a
    write-off moves between the funding account and suspense so that they agree again.

    The funding account stands for the money at the bank (its debit balance):
    positive, the write-off debits funding and credits suspense; negative, the
    reverse. A bank line the ledger lacks counts by the line, a ledger payout
    the bank lacks by the payout, a mismatch by the difference.
    """
    if result is Result.UNMATCHED_BANK:
        return bank_amount if credit else -bank_amount
    if result is Result.UNMATCHED_LEDGER:
        return ledger_amount
    if result is Result.AMOUNT_MISMATCH:
        return ledger_amount - bank_amount if not credit else bank_amount - ledger_amount
    raise InvalidRequest(f"a {result.value} break cannot be written off")


def validate_resolution(action: str, note: str, object_id: str) -> None:
    """Refuse an unknown action, a note too long, or match_to without the object."""
    if action not in BREAK_ACTIONS:
        raise InvalidRequest(f"action must be one of {', '.join(BREAK_ACTIONS)}")
    if len(note) > 1000:
        raise InvalidRequest("note must be at most 1000 characters")
    if action == "match_to" and not object_id:
        raise InvalidRequest("match_to needs the id of the object the line is")
