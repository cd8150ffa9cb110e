"""Use cases of the ledger, and the sweeper that voids expired holds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from paymesh.accounts.domain import (
    OPENED_FLAGS,
    REFUSED_AS_INVALID,
    Account,
    AccountResult,
    AccountsOutcome,
    BankAccount,
    Transfer,
    TransfersOutcome,
)
from paymesh.accounts.errors import AccountNotFound, AccountRefused, InvalidRequest
from paymesh.accounts.ports import Deps, Entry
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger
from paymesh.platform.loops import Periodic

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_BATCH",
    "MAX_LIMIT",
    "ExpirySweeper",
    "create_accounts",
    "create_transfers",
    "expire_transfers",
    "get_account_balances",
    "list_accounts",
    "list_entries",
    "lookup_accounts",
    "lookup_transfers",
    "open_account",
    "set_bank_account",
]

log = get_logger(__name__)

MAX_BATCH = 8190  # items per batched call, as in TigerBeetle
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _check_batch(size: int) -> None:
    if size > MAX_BATCH:
        raise InvalidRequest(f"at most {MAX_BATCH} items per call, got {size}")


async def create_accounts(
    batch: Sequence[Account], *, caller: Caller, deps: Deps
) -> AccountsOutcome:
    """Open the accounts of `batch` for the caller's tenant."""
    _check_batch(len(batch))
    return await deps.store.create_accounts(batch, caller.tenant_id, deps.clock.now_us())


async def open_account(account: Account, *, caller: Caller, deps: Deps) -> Account:
    """Open `account` as the public API opens accounts (never overdrawn); the same
    account again answers the stored one, anything else is :class:`AccountRefused`."""
    outcome = await create_accounts(
        [replace(account, flags=OPENED_FLAGS)], caller=caller, deps=deps
    )
    result, stored = outcome.results[0], outcome.accounts[0]
    if result in (AccountResult.OK, AccountResult.EXISTS) and stored is not None:
        return stored
    raise AccountRefused(result.value, invalid=result in REFUSED_AS_INVALID)


async def lookup_accounts(ids: Sequence[str], *, caller: Caller, deps: Deps) -> list[Account]:
    """The caller's accounts among `ids`."""
    _check_batch(len(ids))
    return await deps.store.lookup_accounts(ids, caller.tenant_id)


async def set_bank_account(
    account_id: str, bank: BankAccount | None, *, caller: Caller, deps: Deps
) -> Account:
    """Set, replace or (None) remove the bank details of the caller's account (validated by
    the caller: :func:`paymesh.platform.banking.bank_account`); the account as it is then."""
    return await deps.store.set_bank_account(account_id, caller.tenant_id, bank)


async def create_transfers(
    batch: Sequence[Transfer], *, caller: Caller, deps: Deps
) -> TransfersOutcome:
    """Apply the transfers of `batch` as the caller's tenant."""
    _check_batch(len(batch))
    return await deps.store.create_transfers(batch, caller.tenant_id, deps.clock.now_us())


async def lookup_transfers(ids: Sequence[str], *, caller: Caller, deps: Deps) -> list[Transfer]:
    """The caller's transfers among `ids`."""
    _check_batch(len(ids))
    return await deps.store.lookup_transfers(ids, caller.tenant_id)


async def list_entries(
    account_id: str, limit: int, starting_after: str, *, caller: Caller, deps: Deps
) -> tuple[list[Entry], bool]:
    """One page of the account's entries, newest first, and whether more follow."""
    return await deps.store.list_entries(
        account_id, caller.tenant_id, _check_limit(limit), starting_after
    )


def _check_limit(limit: int) -> int:
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


async def get_account_balances(
    account_id: str, as_of_us: int, *, caller: Caller, deps: Deps
) -> Account:
    """The caller's account with its balances after every transfer created by `as_of_us`.

    `as_of_us` 0 (unset) means now: the stored balances.
    """
    if as_of_us < 0:
        raise InvalidRequest("as_of_us must not be negative")
    if as_of_us == 0:
        found = await deps.store.lookup_accounts([account_id], caller.tenant_id)
        if not found:
            raise AccountNotFound(account_id)
        return found[0]
    return await deps.store.balances_as_of(account_id, caller.tenant_id, as_of_us)


async def list_accounts(
    limit: int, starting_after: str, *, caller: Caller, deps: Deps
) -> tuple[list[Account], bool]:
    """One page of the caller's accounts by ascending id, and whether more follow."""
    return await deps.store.list_accounts(caller.tenant_id, _check_limit(limit), starting_after)


async def expire_transfers(limit: int = 500, *, deps: Deps) -> int:
    """Void every hold that has expired by now; return how many were voided."""
    total = 0
    while True:
        voided = await deps.store.expire_due(deps.clock.now_us(), limit)
        total += len(voided)
        if len(voided) < limit:
            return total


class ExpirySweeper:
    """Voids expired holds every `interval_s` seconds in the background."""

    def __init__(
        self,
        deps: Deps,
        *,
        interval_s: float = 1.0,
        on_expired: Callable[[], None] | None = None,
    ) -> None:
        self._deps = deps
        self._on_expired = on_expired
        self._loop = Periodic("expiry-sweep", self._step, interval_s=interval_s)

    async def sweep_once(self) -> int:
        """Void what has expired now; return how many holds were voided."""
        count = await expire_transfers(deps=self._deps)
        if count and self._on_expired is not None:
            self._on_expired()
        return count

    async def _step(self) -> None:
        count = await self.sweep_once()
        if count:
            log.info("holds_expired", count=count)

    def start(self) -> None:
        """Sweep in the background."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._loop.stop()
