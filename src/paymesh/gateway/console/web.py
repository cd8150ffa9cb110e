"""The console's routes: every page behind its guard, mounted at ``/console`` on the
gateway (docs/console.md)."""

from __future__ import annotations

from functools import partial

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from paymesh.gateway.console import accounts, admin, payments, risk, webhooks
from paymesh.gateway.console.core import STATIC, Console, SecurityHeaders
from paymesh.gateway.console.service import ConsoleDeps
from paymesh.gateway.deps import Gateway
from paymesh.gateway.domain import (
    ACCOUNTS_READ,
    ADMIN,
    PAYMENTS_READ,
    PAYMENTS_WRITE,
    RISK_ADMIN,
    WEBHOOKS_WRITE,
)

__all__ = ["build_console"]


def build_console(gw: Gateway, deps: ConsoleDeps) -> Starlette:
    """The console as an ASGI app, to mount at ``/console``."""
    c = Console(gw, deps)
    routes = [
        Route("/", c.page(partial(payments.home, c), scope=PAYMENTS_READ)),
        Route("/login", c.login, methods=["GET", "POST"]),
        Route("/logout", c.page(c.logout, tenant=False), methods=["POST"]),
        Route("/password", c.page(c.password, tenant=False), methods=["GET", "POST"]),
        Route("/tenant", c.page(c.tenant, tenant=False), methods=["GET", "POST"]),
        Route("/totp", c.page(c.enroll, tenant=False), methods=["GET", "POST"]),
        Route("/totp/verify", c.page(c.second_factor, tenant=False), methods=["GET", "POST"]),
        Route("/payments", c.page(partial(payments.payments, c), scope=PAYMENTS_READ)),
        Route("/payments/{payment_id}", c.page(partial(payments.payment, c), scope=PAYMENTS_READ)),
        Route(
            "/payments/{payment_id}/{action:str}",
            c.page(partial(payments.payment_action, c), scope=PAYMENTS_WRITE),
            methods=["GET", "POST"],
        ),
        Route("/accounts", c.page(partial(accounts.accounts, c), scope=ACCOUNTS_READ)),
        Route("/accounts/{account_id}", c.page(partial(accounts.account, c), scope=ACCOUNTS_READ)),
        Route(
            "/accounts/{account_id}/statement.csv",
            c.page(partial(accounts.statement_csv, c), scope=ACCOUNTS_READ),
        ),
        Route("/risk/reviews", c.page(partial(risk.reviews, c), scope=RISK_ADMIN)),
        Route("/risk/reviews/{payment_id}", c.page(partial(risk.review, c), scope=RISK_ADMIN)),
        Route(
            "/risk/reviews/{payment_id}/{verb:str}",
            c.page(partial(risk.resolve_review, c), scope=RISK_ADMIN),
            methods=["POST"],
        ),
        Route("/risk/rules", c.page(partial(risk.rules, c), scope=RISK_ADMIN)),
        Route("/risk/lists", c.page(partial(risk.open_list, c), scope=RISK_ADMIN)),
        Route(
            "/risk/lists/{list_name}",
            c.page(partial(risk.list_entries, c), scope=RISK_ADMIN),
            methods=["GET", "POST"],
        ),
        Route(
            "/webhooks",
            c.page(partial(webhooks.endpoints, c), scope=WEBHOOKS_WRITE),
            methods=["GET", "POST"],
        ),
        Route(
            "/webhooks/{endpoint_id}", c.page(partial(webhooks.endpoint, c), scope=WEBHOOKS_WRITE)
        ),
        Route(
            "/webhooks/{endpoint_id}/{action:str}",
            c.page(partial(webhooks.endpoint_action, c), scope=WEBHOOKS_WRITE),
            methods=["POST"],
        ),
        Route(
            "/admin/tenants",
            c.page(partial(admin.tenants, c), scope=ADMIN, tenant=False),
            methods=["GET", "POST"],
        ),
        Route(
            "/admin/tenants/{tenant_id}",
            c.page(partial(admin.tenant, c), scope=ADMIN, tenant=False),
            methods=["GET", "POST"],
        ),
        Route(
            "/admin/users",
            c.page(partial(admin.users, c), scope=ADMIN, tenant=False),
            methods=["GET", "POST"],
        ),
        Route(
            "/admin/security",
            c.page(partial(admin.security, c), scope=ADMIN, tenant=False),
            methods=["GET", "POST"],
        ),
        Route(
            "/admin/keys",
            c.page(partial(admin.keys, c), scope=ADMIN, tenant=False),
            methods=["GET", "POST"],
        ),
        Route("/audit", c.page(partial(payments.audit, c), scope=ADMIN, tenant=False)),
        Mount("/static", StaticFiles(directory=STATIC), name="console-static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
