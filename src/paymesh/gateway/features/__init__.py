"""The REST API by feature: each package keeps its routes (api.py), request and
response bodies (schemas.py) and renderings of the services' messages (views.py).

Every route is declared once, by the decorator on its handler
(:class:`~paymesh.gateway.routing.Routes`); what the rest of the gateway needs to
know about routes is derived here from those declarations.
"""

from __future__ import annotations

from collections.abc import Mapping

from paymesh.gateway.features.accounts.api import routes as accounts
from paymesh.gateway.features.auth.api import routes as auth
from paymesh.gateway.features.events.api import routes as events
from paymesh.gateway.features.payments.api import routes as payments
from paymesh.gateway.features.risk.api import routes as risk
from paymesh.gateway.features.settlement.api import routes as settlement
from paymesh.gateway.features.transfers.api import routes as transfers
from paymesh.gateway.features.webhooks.api import routes as webhooks
from paymesh.gateway.routing import Route

__all__ = ["FEATURES", "MONEY_MOVING", "ROUTES", "ROUTE_SCOPES"]

# In the order their routes appear in /openapi.json.
FEATURES = (auth, accounts, payments, transfers, events, risk, webhooks, settlement)

# Every route as declared.
ROUTES: tuple[Route, ...] = tuple(r for feature in FEATURES for r in feature.declared)

# The scope each route needs, by (method, path template); the open routes have none.
ROUTE_SCOPES: Mapping[tuple[str, str], str] = {
    (r.method, r.path): r.scope for r in ROUTES if r.scope is not None
}

# The paths of the POSTs that move money: they need an Idempotency-Key and admission.
MONEY_MOVING = frozenset(r.path for r in ROUTES if r.moves_money)
