"""REST routes for the tenant's events: reads only (see gateway/reads.py)."""

from __future__ import annotations

from paymesh.gateway.pages import declare_reads
from paymesh.gateway.reads import EVENTS
from paymesh.gateway.routing import Routes

__all__ = ["routes"]

routes = Routes()

declare_reads(routes, EVENTS)
