"""Accounts and their entries as the API shows them."""

from __future__ import annotations

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.events import format_time
from paymesh.gateway import domain
from paymesh.gateway.features.accounts.schemas import (
    AccountOut,
    BalanceOut,
    BankAccountOut,
    EntryOut,
)

__all__ = ["account_view", "bank_account_view", "entry_view"]


def bank_account_view(account: apb.Account) -> BankAccountOut | None:
    """The account's bank details, or None (an accounts service older than them: None)."""
    if not account.HasField("bank_account"):
        return None
    bank = account.bank_account
    return BankAccountOut(iban=bank.iban, bic=bank.bic, name=bank.name)


def account_view(account: apb.Account) -> AccountOut:
    """An account with its balance and bank details."""
    b = account.balance  # the ledger's reading of its four balances
    return AccountOut(
        id=account.id,
        type=account.code,
        currency=account.currency,
        balance=BalanceOut(available=b.available, pending=b.pending, posted=b.posted),
        metadata=dict(account.metadata),
        created=format_time(account.created_at_us),
        bank_account=bank_account_view(account),
    )


def entry_view(entry: apb.Entry) -> EntryOut:
    """A ledger entry from the account's side."""
    t = entry.transfer
    return EntryOut(
        id=t.id,
        amount=domain.entry_amount(entry.side, t.amount),
        currency=t.currency,
        type=t.code,
        # The ledger says how a hold ended; an accounts service older than that field
        # leaves it empty, and then the flags give what the transfer itself did.
        status=entry.status
        or domain.entry_status(
            pending=t.flags.pending,
            post_pending=t.flags.post_pending,
            void_pending=t.flags.void_pending,
        ),
        reference=t.reference,
        created=format_time(t.created_at_us),
    )
