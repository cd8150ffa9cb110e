"""The ledger's rules, pure: a state machine over accounts and transfers.

:func:`create_transfers` takes the current state of the accounts and
transfers a batch names (:class:`LedgerState`), the batch and the time, and
returns one result per transfer, the transfers to insert and the accounts
whose balances changed (:class:`TransfersOutcome`). It performs no I/O.

Semantics follow TigerBeetle's, with these choices written down:

- A transfer sees the effects of the earlier transfers of its batch; a
  linked chain that fails leaves no effect, not even for later items.
- ``exists`` counts as success inside a linked chain, so a retried chain
  answers ``exists`` for every member instead of failing.
- ``post_pending`` with amount 0 posts the full pending amount; the stored
  transfer keeps the resolved amount (and the pending's accounts and
  currency when the caller left them empty). On a retry, a sent amount of 0
  is compared as the full pending amount, an empty account id or currency
  matches what was stored. A ``void_pending`` is stored with the pending
  amount and accepts 0 or that amount.
- An expired hold is voided by a real transfer ``{pending_id}:expired``
  (code ``expiry``), so balances always equal the sum of transfers; caller
  ids may not end with ``:expired``.
"""

from paymesh.accounts.domain.accounts import OPENED_FLAGS, REFUSED_AS_INVALID, create_accounts
from paymesh.accounts.domain.audit import GENESIS_HASH, BatchDigest, batch_hash, encode_transfer
from paymesh.accounts.domain.transfers import (
    create_transfers,
    expire_pending,
    expiry_void,
    transfer_status,
)
from paymesh.accounts.domain.types import (
    EXPIRED_SUFFIX,
    EXPIRY_CODE,
    ID_MAX_LENGTH,
    INT64_MAX,
    Account,
    AccountFlags,
    AccountResult,
    AccountsOutcome,
    Balance,
    BankAccount,
    LedgerState,
    Transfer,
    TransferFlags,
    TransferResult,
    TransfersOutcome,
)

__all__ = [
    "EXPIRED_SUFFIX",
    "EXPIRY_CODE",
    "GENESIS_HASH",
    "ID_MAX_LENGTH",
    "INT64_MAX",
    "OPENED_FLAGS",
    "REFUSED_AS_INVALID",
    "Account",
    "AccountFlags",
    "AccountResult",
    "AccountsOutcome",
    "Balance",
    "BankAccount",
    "BatchDigest",
    "LedgerState",
    "Transfer",
    "TransferFlags",
    "TransferResult",
    "TransfersOutcome",
    "batch_hash",
    "create_accounts",
    "create_transfers",
    "encode_transfer",
    "expire_pending",
    "expiry_void",
    "transfer_status",
]
