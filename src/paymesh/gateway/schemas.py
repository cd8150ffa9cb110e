"""What every feature's request and response bodies share (pydantic), and the problem shape.

Each feature's own bodies are in features/<feature>/schemas.py.

Request models forbid unknown fields, so a client cannot set ``status``,
``balance``, ``tenant_id`` or ``id``. Amounts are strict integers: a float,
a string or a boolean is refused. Every string is :data:`~paymesh.gateway.text.Text`:
one with a lone surrogate or a NUL character is refused (see text.py).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from paymesh.gateway.text import Text
from paymesh.platform.money import CURRENCIES, MAX_AMOUNT

__all__ = [
    "Amount",
    "Currency",
    "Metadata",
    "ObjectId",
    "Problem",
    "ScopeName",
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
    "settlement:read",
    "settlement:write",
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
