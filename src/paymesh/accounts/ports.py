"""The ports the ledger's use cases depend on: the store of accounts and transfers, and
the clock; :class:`Deps` bundles them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from paymesh.accounts.domain import (
    Account,
    AccountsOutcome,
    BankAccount,
    Transfer,
    TransfersOutcome,
)
from paymesh.platform.clock import Clock

__all__ = ["AccountsStore", "Deps", "Entry"]


class Entry(NamedTuple):
    """A transfer seen from one account: its side and what it amounts to now."""

    transfer: Transfer
    side: str  # "debit" or "credit"
    status: str  # domain.transfer_status: pending, posted, voided or expired


class AccountsStore(Protocol):
    """Where accounts and transfers live."""

    async def create_accounts(
        self, batch: Sequence[Account], tenant_id: str, now_us: int
    ) -> AccountsOutcome: ...

    async def lookup_accounts(self, ids: Sequence[str], tenant_id: str) -> list[Account]: ...

    async def set_bank_account(
        self, account_id: str, tenant_id: str, bank: BankAccount | None
    ) -> Account: ...

    async def create_transfers(
        self, batch: Sequence[Transfer], tenant_id: str | None, now_us: int
    ) -> TransfersOutcome: ...

    async def lookup_transfers(self, ids: Sequence[str], tenant_id: str) -> list[Transfer]: ...

    async def list_entries(
        self, account_id: str, tenant_id: str, limit: int, starting_after: str
    ) -> tuple[list[Entry], bool]: ...

    async def expire_due(self, now_us: int, limit: int) -> list[Transfer]: ...

    async def balances_as_of(self, account_id: str, tenant_id: str, as_of_us: int) -> Account: ...

    async def list_accounts(
        self, tenant_id: str, limit: int, starting_after: str
    ) -> tuple[list[Account], bool]: ...


@dataclass(frozen=True)
class Deps:
    """What the ledger's use cases need."""

    store: AccountsStore
    clock: Clock
