"""The caller's identity, carried from the gateway to every service in gRPC metadata.

A service trusts these headers only from its peers (mutual TLS in the
distributed shape) and refuses any object whose tenant is not the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["METADATA_CLIENT", "METADATA_SCOPES", "METADATA_TENANT", "Caller"]

METADATA_TENANT = "x-paymesh-tenant"
METADATA_CLIENT = "x-paymesh-client"
METADATA_SCOPES = "x-paymesh-scopes"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant, the API client and its scopes."""

    tenant_id: str
    client_id: str
    scopes: frozenset[str] = frozenset()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The gRPC metadata that carries this identity."""
        return (
            (METADATA_TENANT, self.tenant_id),
            (METADATA_CLIENT, self.client_id),
            (METADATA_SCOPES, " ".join(sorted(self.scopes))),
        )

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> Caller | None:
        """The identity in `metadata`, or None when there is no tenant."""
        values: dict[str, str] = {}
        for key, value in metadata or ():
            values[key] = value.decode() if isinstance(value, bytes) else value
        tenant = values.get(METADATA_TENANT, "")
        if not tenant:
            return None
        return cls(
            tenant_id=tenant,
            client_id=values.get(METADATA_CLIENT, ""),
            scopes=frozenset(values.get(METADATA_SCOPES, "").split()),
        )
