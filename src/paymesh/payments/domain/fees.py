"""Tenants' fee schedules and the fee of a capture.

A capture costs the payee ``fixed + floor(captured * basis_points / 10 000)``
minor units, never more than the captured amount. The fee moves to the
tenant's revenue account in the same linked ledger batch as the capture.
Fees are not returned on refunds: the payee bears the refunded amount and
keeps having paid the fee.
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.payments.domain.common import Transfer, validate_id
from paymesh.payments.errors import InvalidRequest
from paymesh.platform.money import MAX_AMOUNT

__all__ = [
    "MAX_BASIS_POINTS",
    "NO_FEES",
    "TenantFees",
    "capture_fee",
    "fee_transfer",
    "revenue_account_id",
    "validate_fees",
]

MAX_BASIS_POINTS = 10_000


@dataclass(frozen=True)
class TenantFees:
    """What the platform charges a tenant's payees per capture."""

    tenant_id: str
    fixed: int = 0
    basis_points: int = 0
    updated_at_us: int = 0


NO_FEES = TenantFees(tenant_id="")


def validate_fees(fees: TenantFees) -> None:
    """Refuse a fee schedule outside 0..MAX_AMOUNT fixed and 0..10 000 basis points."""
    validate_id(fees.tenant_id, "tenant_id")
    if not 0 <= fees.fixed <= MAX_AMOUNT:
        raise InvalidRequest(f"fixed must be between 0 and {MAX_AMOUNT}")
    if not 0 <= fees.basis_points <= MAX_BASIS_POINTS:
        raise InvalidRequest(f"basis_points must be between 0 and {MAX_BASIS_POINTS}")


def capture_fee(captured: int, *, fixed: int, basis_points: int) -> int:
    """fixed + floor(captured * basis_points / 10 000), capped at the captured amount."""
    if captured <= 0:
        return 0
    return min(captured, fixed + captured * basis_points // MAX_BASIS_POINTS)


def revenue_account_id(tenant_id: str, currency: str) -> str:
    """The tenant's account that collects its fees, per currency."""
    return f"acct_revenue_{tenant_id}_{currency.lower()}"


def fee_transfer(
    object_id: str, tenant_id: str, payee_account_id: str, fee: int, currency: str
) -> Transfer:
    """The fee of a capture: payee → the tenant's revenue account."""
    return Transfer(
        id=f"{object_id}:fee",
        debit_account_id=payee_account_id,
        credit_account_id=revenue_account_id(tenant_id, currency),
        amount=fee,
        currency=currency,
        code="fee",
        reference=object_id,
    )
