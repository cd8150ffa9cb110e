"""The REST API by feature: each package keeps its routes (api.py), request and
response bodies (schemas.py) and renderings of the services' messages (views.py)."""

from paymesh.gateway.features.accounts.api import router as accounts
from paymesh.gateway.features.auth.api import router as auth
from paymesh.gateway.features.events.api import router as events
from paymesh.gateway.features.payments.api import router as payments
from paymesh.gateway.features.risk.api import router as risk
from paymesh.gateway.features.transfers.api import router as transfers
from paymesh.gateway.features.webhooks.api import router as webhooks

__all__ = ["ROUTERS"]

# In the order their routes appear in /openapi.json.
ROUTERS = (auth, accounts, payments, transfers, events, risk, webhooks)
