"""The request and response bodies of payments and refunds."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from paymesh.gateway.schemas import Amount, Currency, Metadata, ObjectId, _In, _ip, _Out
from paymesh.gateway.text import Text


class PaymentContextIn(_In):
    """What risk looks at besides the amount."""

    ip: Annotated[Text, AfterValidator(_ip)] | None = None
    device_id: Annotated[Text, Field(max_length=200)] | None = None
    country: Annotated[Text, Field(pattern=r"^[A-Z]{2}$")] | None = None


class CreatePaymentIn(_In):
    """Pay from one account of the tenant to another."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "payer_account_id": "acct_0a1b2c",
                    "payee_account_id": "acct_3d4e5f",
                    "amount": 1250,
                    "currency": "USD",
                    "capture_method": "automatic",
                    "description": "Order 1042",
                    "context": {"ip": "203.0.113.7", "device_id": "dev_9", "country": "US"},
                }
            ]
        }
    )
    payer_account_id: ObjectId
    payee_account_id: ObjectId
    amount: Amount
    currency: Currency
    capture_method: Literal["automatic", "manual"] = "automatic"
    description: Annotated[Text, Field(max_length=1000)] | None = None
    metadata: Metadata | None = None
    context: PaymentContextIn | None = None


class CapturePaymentIn(_In):
    """Capture all (no amount) or part of an authorised payment."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 1000}, {}]})
    amount: Amount | None = None


class RiskOut(_Out):
    """What risk decided."""

    decision: str | None = Field(description="approve, review or decline.")
    score: int | None
    reasons: list[str]


class PaymentRiskOut(RiskOut):
    """What risk decided on a payment, and under which rules."""

    rules_version: str | None = Field(description="The version of the rules that decided.")


class PaymentContextOut(_Out):
    """The context given with the payment."""

    ip: str | None
    device_id: str | None
    country: str | None


class PaymentOut(_Out):
    """A payment."""

    id: str
    object: Literal["payment"] = "payment"
    status: str = Field(
        description="processing, requires_capture, succeeded, canceled, failed or in_review."
    )
    amount: int
    currency: str
    amount_captured: int
    amount_refunded: int
    fee: int
    capture_method: str
    payer_account_id: str
    payee_account_id: str
    description: str | None
    metadata: dict[str, str]
    context: PaymentContextOut | None
    risk: PaymentRiskOut | None
    failure_code: str | None = Field(description="Why it failed or was canceled (stable code).")
    failure_message: str | None = Field(description="What failed, in words (may change).")
    created: str
    updated: str = Field(description="When the payment last changed.")


class PaymentList(_Out):
    """A page of payments, newest first."""

    data: list[PaymentOut]
    has_more: bool


class CreateRefundIn(_In):
    """Refund all (no amount) or part of a captured payment.

    Fees are not returned on refunds: the payee gives back the refunded
    amount and the fee charged on the capture stays with the platform.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"payment_id": "pay_0a1b2c", "amount": 500, "reason": "returned"}]
        }
    )
    payment_id: ObjectId
    amount: Amount | None = None
    reason: Annotated[Text, Field(max_length=500)] | None = None


class RefundOut(_Out):
    """A refund."""

    id: str
    object: Literal["refund"] = "refund"
    payment_id: str
    amount: int
    currency: str
    status: str = Field(description="processing, succeeded or failed.")
    reason: str | None
    failure_code: str | None
    created: str


class RefundList(_Out):
    """A page of refunds, newest first."""

    data: list[RefundOut]
    has_more: bool
