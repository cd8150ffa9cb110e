"""The REST API's request and response bodies (pydantic), and the problem shape.

Request models forbid unknown fields, so a client cannot set ``status``,
``balance``, ``tenant_id`` or ``id``. Amounts are strict integers: a float,
a string or a boolean is refused. Every string is :data:`~paymesh.gateway.text.Text`:
one with a lone surrogate or a NUL character is refused (see text.py).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from paymesh.gateway import domain
from paymesh.gateway.text import Text
from paymesh.platform.money import CURRENCIES, MAX_AMOUNT

__all__ = [
    "AccountList",
    "AccountOut",
    "Amount",
    "CapturePaymentIn",
    "ClientCredentialsOut",
    "CreateAccountIn",
    "CreateClientIn",
    "CreatePaymentIn",
    "CreatePayoutIn",
    "CreateRefundIn",
    "CreateTenantIn",
    "CreateTopupIn",
    "CreateTransferIn",
    "Currency",
    "EntryList",
    "EventList",
    "EventOut",
    "PaymentList",
    "PaymentOut",
    "PayoutList",
    "PayoutOut",
    "Problem",
    "RefundList",
    "RefundOut",
    "TenantOut",
    "TokenOut",
    "TopupList",
    "TopupOut",
    "TopupReversalOut",
    "TransferList",
    "TransferOut",
]


def _currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError("must be a known upper-case ISO 4217 currency code, e.g. USD")
    return code


def _metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 40 or len(item) > 500:
            raise ValueError("keys are 1-40 characters, values at most 500")
    return value


def _ip(value: str) -> str:
    ipaddress.ip_address(value)
    return value


Amount = Annotated[
    StrictInt,
    Field(gt=0, le=MAX_AMOUNT, description="Integer amount in the currency's minor units."),
]
Currency = Annotated[
    Text,
    AfterValidator(_currency),
    Field(description="Upper-case ISO 4217 currency code.", examples=["USD"]),
]
Metadata = Annotated[
    dict[Text, Text],
    AfterValidator(_metadata),
    Field(description="Up to 50 string key/value pairs of your own."),
]
ObjectId = Annotated[Text, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ScopeName = Literal[
    "accounts:read",
    "accounts:write",
    "payments:read",
    "payments:write",
    "webhooks:write",
    "risk:admin",
    "admin",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, with a stable code."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://docs.paymesh.dev/errors/insufficient_funds",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "the payer's available balance is too low",
                    "code": "insufficient_funds",
                }
            ]
        },
    )
    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable, machine-readable error code.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For validation_error: each invalid field."
    )


# --- auth and tenants -------------------------------------------------------


class TokenOut(_Out):
    """An OAuth2 access token (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the token expires.")
    scope: str = Field(description="Space-separated scopes the token grants.")


class Fees(_In):
    """A tenant's fee per payment: a fixed part plus basis points of the amount."""

    fixed: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT)] = 0
    basis_points: Annotated[StrictInt, Field(ge=0, le=10_000)] = 0


class CreateTenantIn(_In):
    """Create a tenant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "acme", "fees": {"fixed": 30, "basis_points": 290}}]
        }
    )
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    fees: Fees | None = None


class FeesOut(_Out):
    """A tenant's fee schedule."""

    fixed: int
    basis_points: int


class TenantOut(_Out):
    """A tenant."""

    id: str
    object: Literal["tenant"] = "tenant"
    name: str
    fees: FeesOut
    created: str


class CreateClientIn(_In):
    """Create an API client for a tenant."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"scopes": ["payments:read", "payments:write"]}]}
    )
    scopes: Annotated[list[ScopeName], Field(min_length=1, max_length=len(domain.ALL_SCOPES))]


class ClientCredentialsOut(_Out):
    """A new API client's credentials; the secret is shown only this once."""

    client_id: str
    client_secret: str
    tenant_id: str
    scopes: list[str]


# --- accounts ---------------------------------------------------------------


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


# --- payments, refunds, top-ups ----------------------------------------------


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
    risk: RiskOut | None
    failure_code: str | None = Field(description="Why it failed or was canceled (stable code).")
    created: str


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


class CreateTopupIn(_In):
    """Fund an account from the external funding source."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"account_id": "acct_0a1b2c", "amount": 10000, "currency": "USD"}]
        }
    )
    account_id: ObjectId
    amount: Amount
    currency: Currency


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


class CreatePayoutIn(_In):
    """Send money out of an account to the external funding source."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"account_id": "acct_0a1b2c", "amount": 5000, "currency": "USD"}]
        }
    )
    account_id: ObjectId
    amount: Amount
    currency: Currency


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


class EventOut(BaseModel):
    """An event: the CloudEvents 1.0 envelope, as webhooks deliver it."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "evt_pay_0a1b2c_payment.succeeded",
                    "source": "/paymesh/payments",
                    "type": "payment.succeeded",
                    "subject": "pay_0a1b2c",
                    "time": "2026-01-01T12:00:00Z",
                    "tenant": "ten_0a1b2c",
                    "specversion": "1.0",
                    "datacontenttype": "application/json",
                    "data": {"id": "pay_0a1b2c", "object": "payment", "status": "succeeded"},
                }
            ]
        },
    )
    id: str
    source: str
    type: str = Field(description="e.g. payment.succeeded, refund.succeeded, payout.failed.")
    subject: str = Field(description="The id of the object the event is about.")
    time: str
    tenant: str
    specversion: str
    datacontenttype: str
    data: dict[str, Any] = Field(description="The object as the REST API shows it.")


class EventList(_Out):
    """A page of events, newest first."""

    data: list[EventOut]
    has_more: bool
