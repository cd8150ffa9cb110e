"""Each REST route is declared once (features/*/api.py), and what the gateway knows about
routes (their scopes, the money-moving ones) comes from those declarations."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from starlette.responses import Response

from paymesh.gateway import domain
from paymesh.gateway.api import create_app
from paymesh.gateway.features import FEATURES, MONEY_MOVING, ROUTE_SCOPES, ROUTES
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.routing import Routes
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.payments import FakePayments

SRC = Path(__file__).parents[3] / "src" / "paymesh" / "gateway"


def _operations(tmp_path: Path) -> set[tuple[str, str]]:
    """The operations the app's OpenAPI document lists (what it serves)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/gw.db"
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=url))
    app = create_app(
        settings=settings,
        store=SqlGatewayStore(Database(url)),
        accounts=FakeAccounts(),  # type: ignore[arg-type]
        payments=FakePayments(),  # type: ignore[arg-type]
    )
    return {(m.upper(), path) for path, item in app.openapi()["paths"].items() for m in item}


def test_every_route_the_app_serves_has_exactly_one_declaration(tmp_path: Path) -> None:
    declared = Counter((r.method, r.path) for r in ROUTES)
    assert max(declared.values()) == 1, [k for k, n in declared.items() if n > 1]
    assert _operations(tmp_path) == set(declared)
    assert len(declared) == 62


def test_routes_are_declared_only_in_the_features_decorators() -> None:
    # No second list of routes to keep in step: the scopes and the money-moving paths
    # are derived from the declarations, and no route registers itself another way.
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert "ROUTE_SCOPES = {" not in text, path
        assert "MONEY_MOVING = frozenset({" not in text, path
        assert "@router." not in text, path
        assert ".add_api_route(" not in text or path.name == "routing.py", path


def test_every_scoped_route_names_a_known_scope_and_only_two_are_open() -> None:
    assert set(ROUTE_SCOPES.values()) <= set(domain.ALL_SCOPES)
    assert {(r.method, r.path) for r in ROUTES if r.scope is None} == {
        ("POST", "/v1/oauth/token"),
        ("GET", "/.well-known/jwks.json"),
    }
    assert ROUTE_SCOPES[("POST", "/v1/payments")] == "payments:write"
    assert ROUTE_SCOPES[("GET", "/v1/payments/{payment_id}")] == "payments:read"
    assert ROUTE_SCOPES[("POST", "/v1/tenants")] == "admin"


def test_money_moving_routes_are_the_payments_write_posts_that_move_money() -> None:
    assert {
        "/v1/topups",
        "/v1/topups/{topup_id}/reverse",
        "/v1/payments",
        "/v1/payments/{payment_id}/capture",
        "/v1/payments/{payment_id}/cancel",
        "/v1/refunds",
        "/v1/payouts",
        "/v1/transfers",
    } == MONEY_MOVING
    for path in MONEY_MOVING:
        assert ROUTE_SCOPES[("POST", path)] == "payments:write"


def test_a_feature_lists_what_it_declares() -> None:
    assert sum(len(f.declared) for f in FEATURES) == len(ROUTES)


def test_a_scoped_handler_without_a_caller_is_refused_when_declared() -> None:
    routes = Routes(tag="t")

    async def anonymous() -> Response:
        return Response()

    with pytest.raises(TypeError, match="caller"):
        routes.get("/v1/x", scope="payments:read", summary="x")(anonymous)


def test_a_keyed_handler_needs_the_caller_whose_tenant_holds_the_key() -> None:
    routes = Routes(tag="t")

    async def keyed_only(keyed: KeyedRequest) -> Response:
        return Response()

    async def fine(caller: Caller, keyed: KeyedRequest) -> Response:
        return Response()

    with pytest.raises(TypeError, match="caller"):
        routes.post("/v1/x", scope=None, summary="x")(keyed_only)
    routes.post("/v1/y", scope="payments:write", summary="y", moves_money=True)(fine)
    assert [r.path for r in routes.declared] == ["/v1/y"]


def test_no_route_has_a_dependency_that_runs_on_the_thread_pool() -> None:
    # FastAPI runs a plain-`def` dependency (or handler) on its thread pool: a thread hop
    # per request that profiling showed costs ~12 % of the gateway's CPU.
    import inspect

    from fastapi.routing import APIRoute

    sync: list[str] = []

    def walk(dependant: object, route: str) -> None:
        call = getattr(dependant, "call", None)
        target = call if inspect.isroutine(call) else getattr(call, "__call__", None)
        if call is not None and not (
            inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)
        ):
            sync.append(f"{route}: {getattr(call, '__qualname__', call)}")
        for sub in getattr(dependant, "dependencies", []):
            walk(sub, route)

    routes = [r for f in FEATURES for r in f.router.routes if isinstance(r, APIRoute)]
    assert len(routes) == 62
    for route in routes:
        walk(route.dependant, f"{sorted(route.methods)[0]} {route.path}")
    assert sync == []
