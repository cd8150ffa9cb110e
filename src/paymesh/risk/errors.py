"""The risk service's errors, each with a stable snake_case ``code``.

::

    RiskError                  risk_error
     ├── InvalidRequest        invalid_request     (gRPC INVALID_ARGUMENT)
     ├── TenantMismatch        tenant_mismatch     (gRPC PERMISSION_DENIED)
     └── DecisionNotFound      decision_not_found  (gRPC NOT_FOUND; also another tenant's)
"""

from __future__ import annotations

__all__ = ["DecisionNotFound", "InvalidRequest", "RiskError", "TenantMismatch"]


class RiskError(Exception):
    """The root of every risk error."""

    code = "risk_error"


class InvalidRequest(RiskError):
    """The request is malformed: a missing id, a bad amount, an unknown currency."""

    code = "invalid_request"


class TenantMismatch(RiskError):
    """The request names a tenant other than the caller's."""

    code = "tenant_mismatch"


class DecisionNotFound(RiskError):
    """No decision for this payment that the caller may see."""

    code = "decision_not_found"

    def __init__(self, payment_id: str) -> None:
        super().__init__(f"no decision for payment {payment_id!r}")
        self.payment_id = payment_id
