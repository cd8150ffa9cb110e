"""Request and response bodies of the risk routes: rules, lists and the review queue."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from paymesh.gateway.features.payments.schemas import RiskOut
from paymesh.gateway.schemas import _In, _Out
from paymesh.gateway.text import Text

__all__ = [
    "LIST_NAME",
    "LIST_VALUE",
    "ListEntryIn",
    "ListEntryList",
    "ListEntryOut",
    "RemovedOut",
    "ResolveReviewIn",
    "ReviewList",
    "ReviewOut",
    "ReviewStatus",
    "RuleOut",
    "RulesOut",
]

# A list's name as the rules file refers to it, e.g. "blocked_accounts" (risk's rule).
LIST_NAME = r"^[a-z][a-z0-9_]{0,63}$"
# A list value: an account id, an IP address, a device id, a country code... 1-256
# characters, no "/" (it is a path segment when removed), no surrounding spaces.
_CHAR, _EDGE = r"[^/\x00-\x1f\x7f]", r"[^/\s\x00-\x1f\x7f]"
LIST_VALUE = rf"^{_EDGE}(?:{_CHAR}{{0,254}}{_EDGE})?$"

Note = Annotated[Text, Field(max_length=500, description="Free text for the audit trail.")]
ReviewStatus = Literal["open", "approved", "declined"]


class RuleOut(_Out):
    """One rule of the rule set in force."""

    id: str
    kind: str = Field(
        description="amount_limit, velocity, list, new_account, country_mismatch, amount_zscore..."
    )
    action: str = Field(description="decline, review, score or allow.")
    reason: str = Field(description="The reason code a payment shows when the rule fires.")
    score: int = Field(description="What the rule adds to the score (0-100) when it fires.")
    description: str


class RulesOut(_Out):
    """The rule set risk decides with now, and the last reload it rejected."""

    version: str = Field(description="The version the rules file declares.")
    checksum: str = Field(description="sha256 (hex) of the rules file's content.")
    source: str = Field(description="The rules file's path, or `settings` for the built-in set.")
    loaded_at: str | None = Field(description="When this version took effect.")
    rules: list[RuleOut]
    last_error: str | None = Field(
        description="Why the last reload was rejected (the version above stays in force); "
        "null when the last reload was good."
    )
    last_error_at: str | None


class ListEntryIn(_In):
    """A value to add to a block or allow list."""

    value: Annotated[
        Text,
        Field(
            pattern=LIST_VALUE,
            description="An account id, IP address, device id or country code: 1-256 "
            "characters, no `/`, no surrounding spaces.",
            examples=["acct_3f9k2", "203.0.113.7", "NG"],
        ),
    ]
    note: Note | None = None


class ListEntryOut(_Out):
    """An entry of a list."""

    list: str
    value: str
    note: str | None
    created_at: str | None
    created_by: str | None = Field(description="The API client that added it.")


class ListEntryList(_Out):
    """A page of a list's entries, by value."""

    data: list[ListEntryOut]
    has_more: bool


class RemovedOut(_Out):
    """The answer to removing a list entry."""

    removed: bool


class ResolveReviewIn(_In):
    """An operator's resolution of a review."""

    note: Note | None = None


class ReviewOut(_Out):
    """A payment waiting for (or resolved by) a human."""

    payment_id: str
    object: Literal["review"] = "review"
    status: ReviewStatus = Field(description="open, approved or declined.")
    decision: RiskOut = Field(description="The risk decision that asked for a review.")
    amount: int
    currency: str
    payer_account_id: str
    payee_account_id: str
    created_at: str
    due_at: str | None = Field(
        description="When the configured default resolution applies if nobody resolves it."
    )
    resolved_at: str | None
    resolved_by: str | None = Field(
        description="The API client that resolved it, or `timeout` when the default applied."
    )
    note: str | None


class ReviewList(_Out):
    """A page of reviews, by payment id."""

    data: list[ReviewOut]
    has_more: bool
