"""The risk service's errors, each with a stable snake_case ``code``.

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


class RiskError(Exception):
    """The root of every risk error."""

    code = "risk_error"


class InvalidRequest(RiskError):
    """The request is malformed: a missing id, a bad amount, an unknown currency."""

    code = "invalid_request"


class TenantMismatch(RiskError):
    """The request names a tenant other than the caller's."""

    code = "tenant_mismatch"


class ScopeRequired(RiskError):
    """The caller lacks the scope the operation needs (e.g. risk:admin)."""

    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"this operation needs the {scope} scope")
        self.scope = scope


class DecisionNotFound(RiskError):
    """No decision for this payment that the caller may see."""

    code = "decision_not_found"

    def __init__(self, payment_id: str) -> None:
        super().__init__(f"no decision for payment {payment_id!r}")
        self.payment_id = payment_id


class ReviewNotFound(RiskError):
    """No review for this payment that the caller may see."""

    code = "review_not_found"

    def __init__(self, payment_id: str) -> None:
        super().__init__(f"no review for payment {payment_id!r}")
        self.payment_id = payment_id


class ReviewAlreadyResolved(RiskError):
    """The review was resolved the other way already."""

    code = "review_already_resolved"

    def __init__(self, payment_id: str, status: str) -> None:
        super().__init__(f"the review of payment {payment_id!r} is already {status}")
        self.payment_id = payment_id
        self.status = status


class RulesInvalid(RiskError):
    """A rules file that cannot be read, parsed or validated."""

    code = "rules_invalid"
