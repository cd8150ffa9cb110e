"""The review queue and the block/allow lists, pure.

A decision with outcome ``review`` opens a :class:`Review` keyed by its payment
id. It is resolved once: by an operator (approve or decline), or by the
configured default when it is still open at ``due_at_us``. Resolving again
with the same resolution changes nothing; with the other one it is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

from paymesh.risk.domain.model import Decision
from paymesh.risk.errors import InvalidRequest, ReviewAlreadyResolved

__all__ = [
    "TIMEOUT_RESOLVER",
    "ListEntry",
    "Resolution",
    "Review",
    "ReviewStatus",
    "open_review",
    "resolve",
    "validate_entry",
]

TIMEOUT_RESOLVER = "timeout"
_LIST_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MAX_VALUE = 256


class ReviewStatus(StrEnum):
    """Where a review stands."""

    OPEN = "open"
    APPROVED = "approved"
    DECLINED = "declined"


class Resolution(StrEnum):
    """What a human (or the timeout) decided."""

    APPROVE = "approve"
    DECLINE = "decline"


_RESOLVED = {Resolution.APPROVE: ReviewStatus.APPROVED, Resolution.DECLINE: ReviewStatus.DECLINED}


@dataclass(frozen=True)
class Review:
    """A payment waiting for a human, with the decision that sent it there."""

    decision: Decision
    status: ReviewStatus
    created_at_us: int
    due_at_us: int
    resolved_at_us: int = 0
    resolved_by: str = ""
    note: str = ""

    @property
    def payment_id(self) -> str:
        """The payment (and review) id."""
        return self.decision.payment_id

    @property
    def tenant_id(self) -> str:
        """The payment's tenant."""
        return self.decision.tenant_id

    @property
    def resolution(self) -> Resolution | None:
        """The resolution, or None while open."""
        for resolution, status in _RESOLVED.items():
            if status is self.status:
                return resolution
        return None


def open_review(decision: Decision, *, timeout_s: float) -> Review:
    """The review a ``review`` decision opens, due after `timeout_s`."""
    return Review(
        decision=decision,
        status=ReviewStatus.OPEN,
        created_at_us=decision.decided_at_us,
        due_at_us=decision.decided_at_us + int(timeout_s * 1_000_000),
    )


def resolve(
    review: Review, resolution: Resolution, *, by: str, note: str, now_us: int
) -> Review | None:
    """The resolved review; None when it is already resolved the same way.

    Raises ReviewAlreadyResolved when it was resolved the other way.
    """
    if review.status is ReviewStatus.OPEN:
        return replace(
            review, status=_RESOLVED[resolution], resolved_at_us=now_us, resolved_by=by, note=note
        )
    if review.status is _RESOLVED[resolution]:
        return None
    raise ReviewAlreadyResolved(review.payment_id, review.status.value)


@dataclass(frozen=True)
class ListEntry:
    """A value in one of a tenant's named lists."""

    tenant_id: str
    list: str
    value: str
    note: str = ""
    created_at_us: int = 0
    created_by: str = ""


def validate_entry(list_name: str, value: str) -> None:
    """Refuse a malformed list name or value (raises InvalidRequest)."""
    if not _LIST_NAME.match(list_name):
        raise InvalidRequest("list must be 1-64 characters of a-z, 0-9 and _, starting a-z")
    if not value or len(value) > _MAX_VALUE or value.strip() != value:
        raise InvalidRequest(f"value must be 1-{_MAX_VALUE} characters, no surrounding spaces")
