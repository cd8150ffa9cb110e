"""The events the accounts service publishes (it consumes none)."""

from __future__ import annotations

from paymesh.accounts.domain import Transfer
from paymesh.contracts.events import TOPIC_ACCOUNTS, Event, format_time
from paymesh.platform.clock import new_id

__all__ = ["SOURCE", "TOPIC", "TRANSFER_EXPIRED", "transfer_expired"]

SOURCE = "paymesh.accounts"
TOPIC = TOPIC_ACCOUNTS
TRANSFER_EXPIRED = "transfer.expired"


def transfer_expired(void: Transfer) -> Event:
    """A hold ran out and was voided by `void`; keyed by the pending transfer's id."""
    return Event(
        id=new_id("evt"),
        source=SOURCE,
        type=TRANSFER_EXPIRED,
        subject=void.pending_id,
        time=format_time(void.created_at_us),
        tenant=void.tenant_id,
        data={
            "pending_id": void.pending_id,
            "transfer_id": void.id,
            "debit_account_id": void.debit_account_id,
            "credit_account_id": void.credit_account_id,
            "amount": void.amount,
            "currency": void.currency,
            "reference": void.reference,
        },
    )
