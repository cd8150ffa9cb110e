"""The events the accounts service publishes (it consumes none).

``transfer.expired`` on :data:`~paymesh.contracts.events.TOPIC_ACCOUNTS`, its
payload ``accounts.v1.TransferExpired`` (see :mod:`paymesh.contracts.events`).
"""

from __future__ import annotations

from paymesh.accounts.domain import Transfer
from paymesh.contracts.accounts.v1.accounts_pb2 import TransferExpired
from paymesh.contracts.events import TOPIC_ACCOUNTS, TRANSFER_EXPIRED, Event, new_event
from paymesh.platform.clock import new_id

__all__ = ["SOURCE", "TOPIC", "transfer_expired"]

SOURCE = "paymesh.accounts"
TOPIC = TOPIC_ACCOUNTS

# The fields of the void its announcement carries as they are.
_ANNOUNCED = (
    "pending_id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "reference",
)


def transfer_expired(void: Transfer) -> Event:
    """A hold ran out and was voided by `void`; keyed by the pending transfer's id."""
    payload = TransferExpired(
        transfer_id=void.id, **{name: getattr(void, name) for name in _ANNOUNCED}
    )
    return new_event(
        TRANSFER_EXPIRED,
        payload,
        event_id=new_id("evt"),
        source=SOURCE,
        subject=void.pending_id,
        time_us=void.created_at_us,
        tenant=void.tenant_id,
    )
