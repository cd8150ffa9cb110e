"""A tenant as the API shows it."""

from __future__ import annotations

from paymesh.contracts.events import format_time
from paymesh.gateway.domain import Tenant
from paymesh.gateway.features.auth.schemas import FeesOut, TenantOut


def tenant_view(tenant: Tenant) -> TenantOut:
    """A tenant as the API shows it."""
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        fees=FeesOut(fixed=tenant.fee_fixed, basis_points=tenant.fee_basis_points),
        created=format_time(tenant.created_at_us),
    )
