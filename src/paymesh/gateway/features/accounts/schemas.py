"""The request and response bodies of accounts and their entries."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paymesh.gateway.schemas import Currency, Metadata, _In, _Out


class CreateAccountIn(_In):
    """Open an account."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"currency": "USD", "type": "customer", "metadata": {"user": "u_42"}}]
        }
    )
    currency: Currency
    type: Literal["customer", "merchant"]
    metadata: Metadata | None = None


class BalanceOut(_Out):
    """An account's balance in minor units."""

    available: int = Field(description="posted minus pending debits (holds): what can be spent.")
    pending: int = Field(description="pending credits minus pending debits.")
    posted: int = Field(description="posted credits minus posted debits.")


class AccountOut(_Out):
    """An account and its balance."""

    id: str
    object: Literal["account"] = "account"
    type: str
    currency: str
    balance: BalanceOut
    metadata: dict[str, str]
    created: str


class AccountList(_Out):
    """A page of accounts, in ascending id order."""

    data: list[AccountOut]
    has_more: bool


class EntryOut(_Out):
    """One ledger entry of an account: a transfer seen from the account's side."""

    id: str = Field(description="The transfer id.")
    amount: int = Field(description="Signed from the account's side: credit > 0, debit < 0.")
    currency: str
    type: str = Field(description="What made the transfer (payment, capture, fee, topup, ...).")
    status: str = Field(
        description="posted, voided, or for a hold: pending until it is resolved, then how it "
        "ended (posted when captured, voided when released, expired when its time ran out)."
    )
    reference: str
    created: str


class EntryList(_Out):
    """A page of entries, newest first."""

    data: list[EntryOut]
    has_more: bool
