"""The ledger's vocabulary: accounts, transfers, their flags, results and outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from paymesh.platform.banking import BankAccount

__all__ = [
    "EXPIRED_SUFFIX",
    "EXPIRY_CODE",
    "ID_MAX_LENGTH",
    "INT64_MAX",
    "Account",
    "AccountFlags",
    "AccountResult",
    "AccountsOutcome",
    "Balance",
    "BankAccount",
    "LedgerState",
    "Transfer",
    "TransferFlags",
    "TransferResult",
    "TransfersOutcome",
    "valid_id",
]

INT64_MAX = 2**63 - 1
ID_MAX_LENGTH = 64
EXPIRY_CODE = "expiry"
EXPIRED_SUFFIX = ":expired"


class AccountResult(StrEnum):
    """The answer for one account of a CreateAccounts batch."""

    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_CURRENCY = "exists_with_different_currency"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_METADATA = "exists_with_different_metadata"
    INVALID_CURRENCY = "invalid_currency"
    INVALID_ID = "invalid_id"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    BALANCES_MUST_BE_ZERO = "balances_must_be_zero"
    EXISTS_FOR_OTHER_TENANT = "exists_for_other_tenant"


class TransferResult(StrEnum):
    """The answer for one transfer of a CreateTransfers batch."""

    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_CURRENCY = "exists_with_different_currency"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_REFERENCE = "exists_with_different_reference"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    INVALID_ID = "invalid_id"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    CURRENCY_MISMATCH = "currency_mismatch"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    PENDING_ID_REQUIRED = "pending_id_required"
    PENDING_ID_MUST_BE_EMPTY = "pending_id_must_be_empty"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    AMOUNT_EXCEEDS_PENDING_AMOUNT = "amount_exceeds_pending_amount"
    PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS = "pending_transfer_has_different_accounts"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    AMOUNT_TOO_LARGE = "amount_too_large"
    INVALID_CURRENCY = "invalid_currency"
    TENANT_MISMATCH = "tenant_mismatch"
    OVERFLOW = "overflow"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"


@dataclass(frozen=True)
class AccountFlags:
    """Balance limits of an account."""

    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False


@dataclass(frozen=True)
class Account:
    """An account and its four balances."""

    id: str
    currency: str
    tenant_id: str = ""
    flags: AccountFlags = AccountFlags()
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    code: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at_us: int = 0
    # Where settlement payouts by bank file go (None: none). It may change after the
    # account is opened, so opening the same account again does not compare it.
    bank_account: BankAccount | None = None

    @property
    def balance(self) -> Balance:
        """posted = credits - debits posted; available = posted minus holds; pending = net."""
        posted = self.credits_posted - self.debits_posted
        return Balance(
            available=posted - self.debits_pending,
            pending=self.credits_pending - self.debits_pending,
            posted=posted,
        )


@dataclass(frozen=True)
class Balance:
    """An account's balance as its holder sees it, in minor units."""

    available: int
    pending: int
    posted: int


@dataclass(frozen=True)
class TransferFlags:
    """How a transfer moves money (at most one of pending/post/void)."""

    linked: bool = False
    pending: bool = False
    post_pending: bool = False
    void_pending: bool = False


@dataclass(frozen=True)
class Transfer:
    """One amount from a debit account to a credit account; immutable once stored."""

    id: str
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount: int = 0
    currency: str = ""
    flags: TransferFlags = TransferFlags()
    pending_id: str = ""
    timeout_seconds: int = 0
    tenant_id: str = ""
    code: str = ""
    reference: str = ""
    created_at_us: int = 0
    expires_at_us: int | None = None

    @property
    def resolves_pending(self) -> bool:
        """True for a post_pending or void_pending transfer."""
        return self.flags.post_pending or self.flags.void_pending


@dataclass(frozen=True)
class LedgerState:
    """What the store knows about the objects a batch names.

    `accounts`: every account a transfer of the batch (or its pending
    transfer) names, of any tenant. `transfers`: stored transfers whose id is
    an id or a pending_id of the batch. `resolutions`: for each such pending
    transfer, the post or void transfer that resolved it.
    """

    accounts: Mapping[str, Account] = field(default_factory=dict)
    transfers: Mapping[str, Transfer] = field(default_factory=dict)
    resolutions: Mapping[str, Transfer] = field(default_factory=dict)


@dataclass(frozen=True)
class TransfersOutcome:
    """Per-item results, what to insert, which balances changed."""

    results: list[TransferResult]
    transfers: list[Transfer | None]  # as stored, for ok and exists
    created: list[Transfer]
    accounts: dict[str, Account]  # changed accounts with their new balances


@dataclass(frozen=True)
class AccountsOutcome:
    """Per-item results and the accounts to insert."""

    results: list[AccountResult]
    accounts: list[Account | None]  # as stored, for ok and exists
    created: list[Account]


def valid_id(value: str) -> bool:
    """True for a caller-chosen id: not empty, at most 64 characters."""
    return 0 < len(value) <= ID_MAX_LENGTH
