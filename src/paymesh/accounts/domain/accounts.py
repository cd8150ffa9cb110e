"""Opening accounts: validation and idempotency by id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from paymesh.accounts.domain.types import (
    Account,
    AccountFlags,
    AccountResult,
    AccountsOutcome,
    valid_id,
)
from paymesh.platform.money import is_valid_currency

__all__ = ["OPENED_FLAGS", "REFUSED_AS_INVALID", "create_accounts"]

# An account opened through the public API may never be overdrawn.
OPENED_FLAGS = AccountFlags(debits_must_not_exceed_credits=True)

# The refusals that say the request itself is invalid; the others conflict with
# an account that already has the id.
REFUSED_AS_INVALID = frozenset({AccountResult.INVALID_CURRENCY, AccountResult.INVALID_ID})


def create_accounts(
    existing: Mapping[str, Account], batch: Sequence[Account], tenant_id: str, now_us: int
) -> AccountsOutcome:
    """Decide each account of `batch` for `tenant_id`; earlier items are seen by later ones."""
    known = dict(existing)
    results: list[AccountResult] = []
    stored: list[Account | None] = []
    created: list[Account] = []
    for a in batch:
        result, account = _create_account(known, a, tenant_id, now_us)
        results.append(result)
        stored.append(account)
        if result is AccountResult.OK and account is not None:
            known[account.id] = account
            created.append(account)
    return AccountsOutcome(results, stored, created)


def _create_account(
    known: Mapping[str, Account], a: Account, tenant_id: str, now_us: int
) -> tuple[AccountResult, Account | None]:
    if not valid_id(a.id):
        return AccountResult.INVALID_ID, None
    if a.flags.debits_must_not_exceed_credits and a.flags.credits_must_not_exceed_debits:
        return AccountResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE, None
    if a.debits_pending or a.debits_posted or a.credits_pending or a.credits_posted:
        return AccountResult.BALANCES_MUST_BE_ZERO, None
    if not is_valid_currency(a.currency):
        return AccountResult.INVALID_CURRENCY, None
    e = known.get(a.id)
    if e is None:
        return AccountResult.OK, replace(
            a, tenant_id=tenant_id, metadata=dict(a.metadata), created_at_us=now_us
        )
    if e.tenant_id != tenant_id:
        return AccountResult.EXISTS_FOR_OTHER_TENANT, None
    if e.currency != a.currency:
        return AccountResult.EXISTS_WITH_DIFFERENT_CURRENCY, None
    if e.flags != a.flags:
        return AccountResult.EXISTS_WITH_DIFFERENT_FLAGS, None
    if e.code != a.code:
        return AccountResult.EXISTS_WITH_DIFFERENT_CODE, None
    if dict(e.metadata) != dict(a.metadata):
        return AccountResult.EXISTS_WITH_DIFFERENT_METADATA, None
    return AccountResult.EXISTS, e
