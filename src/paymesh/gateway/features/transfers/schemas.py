"""The request and response bodies of top-ups, payouts and transfers."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paymesh.gateway.schemas import Amount, Currency, ObjectId, _In, _Out


class _FundingIn(_In):
    """Money moved between an account and the external funding source."""

    account_id: ObjectId
    amount: Amount
    currency: Currency


class CreateTopupIn(_FundingIn):
    """Fund an account from the external funding source."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"account_id": "acct_0a1b2c", "amount": 10000, "currency": "USD"}]
        }
    )


class TopupOut(_Out):
    """A top-up."""

    id: str
    object: Literal["topup"] = "topup"
    account_id: str
    amount: int
    currency: str
    status: str = Field(description="processing, succeeded or failed.")
    failure_code: str | None
    created: str


class TopupReversalOut(_Out):
    """A top-up's reversal: its money back to the external funding source."""

    id: str = Field(description="The reversed top-up's id: a top-up is reversed at most once.")
    object: Literal["topup_reversal"] = "topup_reversal"
    topup_id: str
    account_id: str
    amount: int
    currency: str
    status: str = Field(description="processing, succeeded or failed.")
    failure_code: str | None
    created: str


class TopupList(_Out):
    """A page of top-ups, newest first."""

    data: list[TopupOut]
    has_more: bool


class CreatePayoutIn(_FundingIn):
    """Send money out of an account to the external funding source."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"account_id": "acct_0a1b2c", "amount": 5000, "currency": "USD"}]
        }
    )


class PayoutOut(_Out):
    """A payout."""

    id: str
    object: Literal["payout"] = "payout"
    account_id: str
    amount: int
    currency: str
    status: str = Field(
        description="processing (also while the bank's answer is awaited), succeeded or failed."
    )
    failure_code: str | None = Field(
        description="Why it failed: insufficient_funds, account_not_found, or the bank's code."
    )
    created: str


class PayoutList(_Out):
    """A page of payouts, newest first."""

    data: list[PayoutOut]
    has_more: bool


class CreateTransferIn(_In):
    """Move money between two accounts of the tenant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from_account_id": "acct_0a1b2c",
                    "to_account_id": "acct_3d4e5f",
                    "amount": 700,
                    "currency": "USD",
                }
            ]
        }
    )
    from_account_id: ObjectId
    to_account_id: ObjectId
    amount: Amount
    currency: Currency


class TransferOut(_Out):
    """A transfer between two accounts of the tenant."""

    id: str
    object: Literal["transfer"] = "transfer"
    from_account_id: str
    to_account_id: str
    amount: int
    currency: str
    status: str = Field(description="processing, succeeded or failed.")
    failure_code: str | None = Field(description="e.g. insufficient_funds, account_not_found.")
    created: str


class TransferList(_Out):
    """A page of transfers, newest first."""

    data: list[TransferOut]
    has_more: bool
