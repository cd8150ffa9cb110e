"""Recording security-relevant events in the append-only audit log.

Callers pass what happened and who asked; never a client secret or a
token (for a token, at most its ``kid`` and ``jti``).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Protocol

from paymesh.gateway.domain import AuditEntry
from paymesh.platform.clock import Clock, new_id

__all__ = ["SYSTEM", "AuditLog", "Origin", "cli_origin", "record"]


class AuditLog(Protocol):
    """Where audit entries are appended (the gateway's store)."""

    async def append_audit(self, entry: AuditEntry) -> None: ...


@dataclass(frozen=True)
class Origin:
    """Who asked (a client_id, ``cli:<user>``, ``system``) and from where (an address, ``cli``)."""

    actor: str
    source: str


SYSTEM = Origin(actor="system", source="internal")


def cli_origin() -> Origin:
    """The operator running the ``paymesh`` command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Origin(actor=f"cli:{user}", source="cli")


async def record(
    store: AuditLog,
    clock: Clock,
    origin: Origin,
    action: str,
    *,
    outcome: str = "success",
    tenant_id: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    details: dict[str, object] | None = None,
) -> None:
    """Append one audit entry."""
    await store.append_audit(
        AuditEntry(
            id=new_id("aud"),
            at_us=clock.now_us(),
            actor=actor or origin.actor,
            tenant_id=tenant_id,
            action=action,
            target=target,
            outcome=outcome,
            source=origin.source,
            details=details or {},
        )
    )
