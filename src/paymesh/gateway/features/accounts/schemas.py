"""The request and response bodies of accounts, their bank details and their entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from paymesh.gateway.schemas import Currency, Metadata, _In, _Out
from paymesh.gateway.text import Text
from paymesh.platform.banking import (
    NAME_MAX_LENGTH,
    RAW_MAX_LENGTH,
    InvalidBankDetails,
    check_bic_country,
    check_name,
    normalise_bic,
    normalise_iban,
)

__all__ = [
    "AccountList",
    "AccountOut",
    "BalanceOut",
    "BankAccountIn",
    "BankAccountOut",
    "CreateAccountIn",
    "EntryList",
    "EntryOut",
]

INVALID_BANK_ACCOUNT = "invalid_bank_account"


def _bank_detail(check: Callable[[str], str]) -> AfterValidator:
    """A pydantic validator of one bank detail: its normal form, or an error naming it."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except InvalidBankDetails as exc:
            raise PydanticCustomError(INVALID_BANK_ACCOUNT, str(exc)) from None

    return AfterValidator(validate)


_EXAMPLE_BANK_ACCOUNT: JsonDict = {
    "iban": "DE89 3704 0044 0532 0130 00",
    "bic": "COBADEFFXXX",
    "name": "Example Trading GmbH",
}


class BankAccountIn(_In):
    """An account's bank details, where settlement payouts by bank file go.

    Stored normalised: the IBAN without spaces and upper case, the BIC upper case, the
    name without surrounding whitespace.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_BANK_ACCOUNT]})
    iban: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=RAW_MAX_LENGTH,
            description="IBAN; spaces and lower case allowed. Checked: country, length, "
            "format, check digits.",
        ),
        _bank_detail(normalise_iban),
    ]
    bic: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=RAW_MAX_LENGTH,
            description="BIC of 8 or 11 characters (ISO 9362), of the IBAN's country.",
        ),
        _bank_detail(normalise_bic),
    ]
    name: Annotated[
        Text,
        Field(
            min_length=1,
            max_length=NAME_MAX_LENGTH,
            description="The account holder's name: 1-70 printable characters "
            "(ISO 20022 Max70Text).",
        ),
        _bank_detail(check_name),
    ]

    @field_validator("bic")
    @classmethod
    def _bic_of_the_ibans_country(cls, bic: str, info: ValidationInfo) -> str:
        iban = info.data.get("iban")
        if iban is not None:  # else the IBAN's own error says what is wrong
            try:
                check_bic_country(iban, bic)
            except InvalidBankDetails as exc:
                raise PydanticCustomError(INVALID_BANK_ACCOUNT, str(exc)) from None
        return bic


class BankAccountOut(_Out):
    """An account's bank details as stored."""

    iban: str = Field(description="Without spaces, upper case.")
    bic: str = Field(description="Upper case.")
    name: str


class CreateAccountIn(_In):
    """Open an account."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"currency": "USD", "type": "customer", "metadata": {"user": "u_42"}},
                {"currency": "EUR", "type": "merchant", "bank_account": _EXAMPLE_BANK_ACCOUNT},
            ]
        }
    )
    currency: Currency
    type: Literal["customer", "merchant"]
    metadata: Metadata | None = None
    bank_account: BankAccountIn | None = Field(
        default=None, description="Optional bank details (they can be set later too)."
    )


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
    bank_account: BankAccountOut | None = Field(
        description="Where settlement payouts by bank file go; null when not set."
    )


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
