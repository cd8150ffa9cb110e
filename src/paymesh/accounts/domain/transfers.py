"""Transfers: the state machine that decides a batch against the ledger's state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from paymesh.accounts.domain.types import (
    EXPIRED_SUFFIX,
    EXPIRY_CODE,
    INT64_MAX,
    Account,
    LedgerState,
    Transfer,
    TransferFlags,
    TransferResult,
    TransfersOutcome,
    valid_id,
)
from paymesh.platform.money import MAX_AMOUNT, is_valid_currency

__all__ = ["create_transfers", "expire_pending", "expiry_void", "transfer_status"]

_R = TransferResult
_US = 1_000_000


def create_transfers(
    state: LedgerState, batch: Sequence[Transfer], tenant_id: str | None, now_us: int
) -> TransfersOutcome:
    """Decide each transfer of `batch`, made by `tenant_id` at `now_us`.

    With `tenant_id` None each transfer already carries its caller's tenant
    (a group commit merges several callers' batches into one).
    """
    items = list(batch) if tenant_id is None else [replace(t, tenant_id=tenant_id) for t in batch]
    return _run(state, items, now_us, expiring=False)


def expiry_void(pending: Transfer) -> Transfer:
    """The transfer that voids `pending` when its timeout has passed."""
    return Transfer(
        id=f"{pending.id}{EXPIRED_SUFFIX}",
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount=pending.amount,
        currency=pending.currency,
        flags=TransferFlags(void_pending=True),
        pending_id=pending.id,
        tenant_id=pending.tenant_id,
        code=EXPIRY_CODE,
        reference=pending.reference,
    )


def transfer_status(t: Transfer, resolution: Transfer | None) -> str:
    """What `t` amounts to now, given the transfer that resolved it if it is a hold.

    A post is "posted", a void "voided". A hold is "pending" until `resolution`
    exists, then "posted", "voided", or "expired" when the sweeper voided it.
    Anything else is "posted".
    """
    if t.flags.void_pending:
        return "voided"
    if not t.flags.pending:
        return "posted"
    if resolution is None:
        return "pending"
    if resolution.flags.post_pending:
        return "posted"
    if resolution.id == f"{t.id}{EXPIRED_SUFFIX}":
        return "expired"
    return "voided"


def expire_pending(
    state: LedgerState, pending: Sequence[Transfer], now_us: int
) -> TransfersOutcome:
    """Void every transfer of `pending` whose hold has expired at `now_us`."""
    due = [
        expiry_void(p)
        for p in pending
        if p.flags.pending and p.expires_at_us is not None and p.expires_at_us <= now_us
    ]
    return _run(state, due, now_us, expiring=True)


class _Ledger:
    """The batch's working state: committed changes plus one chain's overlay."""

    def __init__(self, state: LedgerState) -> None:
        self._accounts = dict(state.accounts)
        self._transfers = dict(state.transfers)
        self._resolutions = dict(state.resolutions)
        self.created: list[Transfer] = []
        self.changed: set[str] = set()
        self._chain_accounts: dict[str, Account] = {}
        self._chain_transfers: dict[str, Transfer] = {}
        self._chain_resolutions: dict[str, Transfer] = {}
        self._chain_created: list[Transfer] = []

    def account(self, account_id: str) -> Account | None:
        return self._chain_accounts.get(account_id) or self._accounts.get(account_id)

    def transfer(self, transfer_id: str) -> Transfer | None:
        return self._chain_transfers.get(transfer_id) or self._transfers.get(transfer_id)

    def resolution(self, pending_id: str) -> Transfer | None:
        return self._chain_resolutions.get(pending_id) or self._resolutions.get(pending_id)

    def put(self, t: Transfer, debit: Account, credit: Account) -> None:
        self._chain_transfers[t.id] = t
        self._chain_created.append(t)
        self._chain_accounts[debit.id] = debit
        self._chain_accounts[credit.id] = credit
        if t.resolves_pending:
            self._chain_resolutions[t.pending_id] = t

    def commit(self) -> None:
        self._accounts.update(self._chain_accounts)
        self._transfers.update(self._chain_transfers)
        self._resolutions.update(self._chain_resolutions)
        self.created.extend(self._chain_created)
        self.changed.update(self._chain_accounts)
        self.rollback()

    def rollback(self) -> None:
        self._chain_accounts = {}
        self._chain_transfers = {}
        self._chain_resolutions = {}
        self._chain_created = []

    def changed_accounts(self) -> dict[str, Account]:
        return {i: self._accounts[i] for i in sorted(self.changed)}


def _run(
    state: LedgerState, items: Sequence[Transfer], now_us: int, *, expiring: bool
) -> TransfersOutcome:
    ledger = _Ledger(state)
    n = len(items)
    results: list[TransferResult] = [_R.LINKED_EVENT_FAILED] * n
    stored: list[Transfer | None] = [None] * n
    start = 0
    while start < n:
        end = start  # the chain is items[start..end]; it ends at the first unlinked item
        while end < n and items[end].flags.linked:
            end += 1
        if end == n:
            for k in range(start, n):
                results[k] = _R.LINKED_EVENT_CHAIN_OPEN
            break
        failed = False
        for k in range(start, end + 1):
            result, t = _create_one(ledger, items[k], now_us, expiring=expiring)
            results[k], stored[k] = result, t
            if result not in (_R.OK, _R.EXISTS):
                failed = True
                for j in range(start, end + 1):
                    if j != k:
                        results[j], stored[j] = _R.LINKED_EVENT_FAILED, None
                break
        if failed:
            ledger.rollback()
        else:
            ledger.commit()
        start = end + 1
    return TransfersOutcome(results, stored, ledger.created, ledger.changed_accounts())


def _create_one(
    ledger: _Ledger, t: Transfer, now_us: int, *, expiring: bool
) -> tuple[TransferResult, Transfer | None]:
    if not valid_id(t.id) and not expiring:
        return _R.INVALID_ID, None
    if t.id.endswith(EXPIRED_SUFFIX) and not expiring:
        return _R.INVALID_ID, None
    existing = ledger.transfer(t.id)
    if existing is not None:
        if existing.tenant_id != t.tenant_id:
            return _R.TENANT_MISMATCH, None
        result = _compare(t, existing, ledger)
        return result, existing if result is _R.EXISTS else None
    f = t.flags
    if f.pending + f.post_pending + f.void_pending > 1:
        return _R.FLAGS_ARE_MUTUALLY_EXCLUSIVE, None
    if t.resolves_pending and not t.pending_id:
        return _R.PENDING_ID_REQUIRED, None
    if not t.resolves_pending and t.pending_id:
        return _R.PENDING_ID_MUST_BE_EMPTY, None
    if t.timeout_seconds < 0 or (t.timeout_seconds and not f.pending):
        return _R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, None
    if t.resolves_pending:
        return _resolve(ledger, t, now_us, expiring=expiring)
    return _move(ledger, t, now_us)


def _move(ledger: _Ledger, t: Transfer, now_us: int) -> tuple[TransferResult, Transfer | None]:
    """A single-phase or pending transfer."""
    if t.amount <= 0:
        return _R.AMOUNT_MUST_BE_POSITIVE, None
    if t.amount > MAX_AMOUNT:
        return _R.AMOUNT_TOO_LARGE, None
    if t.debit_account_id == t.credit_account_id:
        return _R.ACCOUNTS_MUST_BE_DIFFERENT, None
    if not is_valid_currency(t.currency):
        return _R.INVALID_CURRENCY, None
    dr = ledger.account(t.debit_account_id)
    if dr is None or dr.tenant_id != t.tenant_id:
        return _R.DEBIT_ACCOUNT_NOT_FOUND, None
    cr = ledger.account(t.credit_account_id)
    if cr is None or cr.tenant_id != t.tenant_id:
        return _R.CREDIT_ACCOUNT_NOT_FOUND, None
    if dr.currency != t.currency or cr.currency != t.currency:
        return _R.CURRENCY_MISMATCH, None
    expires: int | None = None
    if t.flags.pending and t.timeout_seconds:
        expires = now_us + t.timeout_seconds * _US
        if expires > INT64_MAX:
            return _R.OVERFLOW, None
    if t.flags.pending:
        dr = replace(dr, debits_pending=dr.debits_pending + t.amount)
        cr = replace(cr, credits_pending=cr.credits_pending + t.amount)
    else:
        dr = replace(dr, debits_posted=dr.debits_posted + t.amount)
        cr = replace(cr, credits_posted=cr.credits_posted + t.amount)
    if _overflows(dr) or _overflows(cr):
        return _R.OVERFLOW, None
    limit = _limit(dr, cr)
    if limit is not None:
        return limit, None
    stored = replace(t, created_at_us=now_us, expires_at_us=expires)
    ledger.put(stored, dr, cr)
    return _R.OK, stored


def _resolve(
    ledger: _Ledger, t: Transfer, now_us: int, *, expiring: bool
) -> tuple[TransferResult, Transfer | None]:
    """A post_pending or void_pending transfer."""
    if t.amount < 0:
        return _R.AMOUNT_MUST_BE_POSITIVE, None
    if t.amount > MAX_AMOUNT:
        return _R.AMOUNT_TOO_LARGE, None
    if t.currency and not is_valid_currency(t.currency):
        return _R.INVALID_CURRENCY, None
    p = ledger.transfer(t.pending_id)
    if p is None or p.tenant_id != t.tenant_id:
        return _R.PENDING_TRANSFER_NOT_FOUND, None
    if not p.flags.pending:
        return _R.PENDING_TRANSFER_NOT_PENDING, None
    if (t.debit_account_id and t.debit_account_id != p.debit_account_id) or (
        t.credit_account_id and t.credit_account_id != p.credit_account_id
    ):
        return _R.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS, None
    if t.currency and t.currency != p.currency:
        return _R.CURRENCY_MISMATCH, None
    if t.amount > p.amount:
        return _R.AMOUNT_EXCEEDS_PENDING_AMOUNT, None
    if t.flags.void_pending and t.amount not in (0, p.amount):
        return _R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT, None
    done = ledger.resolution(p.id)
    if done is not None:
        if done.id == f"{p.id}{EXPIRED_SUFFIX}":
            return _R.PENDING_TRANSFER_EXPIRED, None
        if done.flags.post_pending:
            return _R.PENDING_TRANSFER_ALREADY_POSTED, None
        return _R.PENDING_TRANSFER_ALREADY_VOIDED, None
    if not expiring and p.expires_at_us is not None and now_us >= p.expires_at_us:
        return _R.PENDING_TRANSFER_EXPIRED, None
    dr = ledger.account(p.debit_account_id)
    if dr is None:
        return _R.DEBIT_ACCOUNT_NOT_FOUND, None
    cr = ledger.account(p.credit_account_id)
    if cr is None:
        return _R.CREDIT_ACCOUNT_NOT_FOUND, None
    amount = p.amount if t.amount == 0 or t.flags.void_pending else t.amount
    posted = amount if t.flags.post_pending else 0
    # The hold was already counted against the limits when it was made; posting
    # at most the held amount and releasing the rest can only lower the debits
    # of the debit account and raise the credits of the credit account.
    dr = replace(
        dr, debits_pending=dr.debits_pending - p.amount, debits_posted=dr.debits_posted + posted
    )
    cr = replace(
        cr,
        credits_pending=cr.credits_pending - p.amount,
        credits_posted=cr.credits_posted + posted,
    )
    if _overflows(dr) or _overflows(cr):
        return _R.OVERFLOW, None
    stored = replace(
        t,
        debit_account_id=p.debit_account_id,
        credit_account_id=p.credit_account_id,
        amount=amount,
        currency=p.currency,
        created_at_us=now_us,
        expires_at_us=None,
    )
    ledger.put(stored, dr, cr)
    return _R.OK, stored


def _overflows(a: Account) -> bool:
    return (
        a.debits_pending + a.debits_posted > INT64_MAX
        or a.credits_pending + a.credits_posted > INT64_MAX
    )


def _limit(dr: Account, cr: Account) -> TransferResult | None:
    if dr.flags.debits_must_not_exceed_credits and (
        dr.debits_pending + dr.debits_posted > dr.credits_posted
    ):
        return _R.EXCEEDS_CREDITS
    if cr.flags.credits_must_not_exceed_debits and (
        cr.credits_pending + cr.credits_posted > cr.debits_posted
    ):
        return _R.EXCEEDS_DEBITS
    return None


def _compare(t: Transfer, e: Transfer, ledger: _Ledger) -> TransferResult:
    """`exists` when the retry `t` asks for what `e` did; else the first difference."""
    if t.flags != e.flags:
        return _R.EXISTS_WITH_DIFFERENT_FLAGS
    if t.pending_id != e.pending_id:
        return _R.EXISTS_WITH_DIFFERENT_PENDING_ID
    if t.timeout_seconds != e.timeout_seconds:
        return _R.EXISTS_WITH_DIFFERENT_TIMEOUT
    loose = e.resolves_pending  # empty fields were filled in from the pending transfer
    if t.debit_account_id != e.debit_account_id and not (loose and not t.debit_account_id):
        return _R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if t.credit_account_id != e.credit_account_id and not (loose and not t.credit_account_id):
        return _R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    sent = t.amount
    if loose and sent == 0:
        pending = ledger.transfer(e.pending_id)
        sent = pending.amount if pending is not None else e.amount
    if sent != e.amount:
        return _R.EXISTS_WITH_DIFFERENT_AMOUNT
    if t.currency != e.currency and not (loose and not t.currency):
        return _R.EXISTS_WITH_DIFFERENT_CURRENCY
    if t.code != e.code:
        return _R.EXISTS_WITH_DIFFERENT_CODE
    if t.reference != e.reference:
        return _R.EXISTS_WITH_DIFFERENT_REFERENCE
    return _R.EXISTS
