"""The risk service's errors, each with a stable snake_case ``code`` and its gRPC status.

::

    RiskError                    risk_error
     ├── InvalidRequest          invalid_request          (gRPC INVALID_ARGUMENT)
     ├── TenantMismatch          tenant_mismatch          (gRPC PERMISSION_DENIED)
     ├── ScopeRequired           insufficient_scope       (gRPC PERMISSION_DENIED)
     ├── DecisionNotFound        decision_not_found       (gRPC NOT_FOUND; also another tenant's)
     ├── ReviewNotFound          review_not_found         (gRPC NOT_FOUND; also another tenant's)
     ├── ReviewAlreadyResolved   review_already_resolved  (gRPC FAILED_PRECONDITION)
     └── RulesInvalid            rules_invalid            (a rules file that does not validate)
"""

from __future__ import annotations

from paymesh.platform.errors import ServiceError

__all__ = [
    "DecisionNotFound",
    "InvalidRequest",
    "ReviewAlreadyResolved",
    "ReviewNotFound",
    "RiskError",
    "RulesInvalid",
    "ScopeRequired",
    "TenantMismatch",
]


class RiskError(ServiceError):
    """The root of every risk error."""

    code = "risk_error"


class InvalidRequest(RiskError):
    """The request is malformed: a missing id, a bad amount, an unknown currency."""

    code = "invalid_request"
    status = "INVALID_ARGUMENT"


class TenantMismatch(RiskError):
    """The request names a tenant other than the caller's."""

    code = "tenant_mismatch"
    status = "PERMISSION_DENIED"


class ScopeRequired(RiskError):
    """The caller lacks the scope the operation needs (e.g. risk:admin)."""

    code = "insufficient_scope"
    status = "PERMISSION_DENIED"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this operation needs the {scope} scope")
        self.scope = scope


class _PaymentError(RiskError):
    """An error about one payment's decision or review."""

    what = ""

    def __init__(self, payment_id: str, detail: str = "") -> None:
        super().__init__(detail or f"no {self.what} for payment {payment_id!r}")
        self.payment_id = payment_id


class DecisionNotFound(_PaymentError):
    """No decision for this payment that the caller may see."""

    code = "decision_not_found"
    status = "NOT_FOUND"
    what = "decision"


class ReviewNotFound(_PaymentError):
    """No review for this payment that the caller may see."""

    code = "review_not_found"
    status = "NOT_FOUND"
    what = "review"


class ReviewAlreadyResolved(_PaymentError):
    """The review was resolved the other way already."""

    code = "review_already_resolved"
    status = "FAILED_PRECONDITION"

    def __init__(self, payment_id: str, review_status: str) -> None:
        super().__init__(
            payment_id, f"the review of payment {payment_id!r} is already {review_status}"
        )
        self.review_status = review_status


class RulesInvalid(RiskError):
    """A rules file that cannot be read, parsed or validated."""

    code = "rules_invalid"
