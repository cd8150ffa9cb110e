"""The webhook endpoint routes over a real store (SQLite and PostgreSQL), with a
fake webhooks service behind the WebhooksBackend port."""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidTag

from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.errors import UpstreamError
from paymesh.gateway.security import ResponseSealer
from paymesh.gateway.store import GatewayStore
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.platform.migrations import upgrade
from paymesh.platform.settings import GatewaySettings, Settings
from tests.integration.gateway.conftest import ALL, FakeAccounts, FakePayments, Harness

WRITE = {"webhooks:write"}
T0 = 1_700_000_000_000_000


@dataclass
class _Stored:
    tenant_id: str
    endpoint: wpb.Endpoint
    secret: str


@dataclass
class FakeWebhooks:
    """The webhooks service in memory: per-tenant endpoints, secrets, a delivery log."""

    endpoints: dict[str, _Stored] = field(default_factory=dict)
    deliveries: dict[str, list[wpb.Delivery]] = field(default_factory=dict)
    # (method name, request) of every call, in order.
    calls: list[tuple[str, object]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def _mine(self, endpoint_id: str, caller: Caller) -> _Stored:
        stored = self.endpoints.get(endpoint_id)
        if stored is None or stored.tenant_id != caller.tenant_id:
            raise UpstreamError(404, "webhook_endpoint_not_found", "no such webhook endpoint")
        return stored

    async def create_endpoint(
        self, request: wpb.CreateEndpointRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret:
        self.calls.append(("create_endpoint", request))
        if "127.0.0.1" in request.url:
            raise UpstreamError(422, "invalid_request", "url points at a private address")
        existing = self.endpoints.get(request.id)
        if existing is not None:
            if existing.tenant_id != caller.tenant_id:
                raise UpstreamError(409, "id_taken", "id used by another tenant")
            return wpb.EndpointWithSecret(endpoint=existing.endpoint, secret=existing.secret)
        endpoint = wpb.Endpoint(
            id=request.id,
            tenant_id=caller.tenant_id,
            url=request.url,
            events=sorted(set(request.events)),
            status=wpb.ENDPOINT_STATUS_ENABLED,
            description=request.description,
            created_at_us=T0 + next(self._seq),
        )
        secret = "whsec_" + secrets.token_urlsafe(24)
        self.endpoints[request.id] = _Stored(caller.tenant_id, endpoint, secret)
        return wpb.EndpointWithSecret(endpoint=endpoint, secret=secret)

    async def get_endpoint(
        self, request: wpb.GetEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        self.calls.append(("get_endpoint", request))
        return self._mine(request.id, caller).endpoint

    async def list_endpoints(
        self, request: wpb.ListEndpointsRequest, *, caller: Caller
    ) -> wpb.ListEndpointsResponse:
        self.calls.append(("list_endpoints", request))
        mine = sorted(
            (s.endpoint for s in self.endpoints.values() if s.tenant_id == caller.tenant_id),
            key=lambda e: e.created_at_us,
            reverse=True,
        )
        if request.starting_after:
            ids = [e.id for e in mine]
            mine = mine[ids.index(request.starting_after) + 1 :]
        return wpb.ListEndpointsResponse(
            data=mine[: request.limit], has_more=len(mine) > request.limit
        )

    async def delete_endpoint(
        self, request: wpb.DeleteEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        self.calls.append(("delete_endpoint", request))
        stored = self._mine(request.id, caller)
        del self.endpoints[request.id]
        return stored.endpoint

    async def rotate_secret(
        self, request: wpb.RotateSecretRequest, *, caller: Caller
    ) -> wpb.EndpointWithSecret:
        self.calls.append(("rotate_secret", request))
        stored = self._mine(request.id, caller)
        grace_s = request.grace_period_s or 86_400  # the "configured default"
        stored.endpoint.previous_secret_expires_at_us = T0 + grace_s * 1_000_000
        stored.secret = "whsec_" + secrets.token_urlsafe(24)
        return wpb.EndpointWithSecret(endpoint=stored.endpoint, secret=stored.secret)

    async def enable_endpoint(
        self, request: wpb.EnableEndpointRequest, *, caller: Caller
    ) -> wpb.Endpoint:
        self.calls.append(("enable_endpoint", request))
        stored = self._mine(request.id, caller)
        stored.endpoint.status = wpb.ENDPOINT_STATUS_ENABLED
        stored.endpoint.disabled_reason = ""
        return stored.endpoint

    async def list_deliveries(
        self, request: wpb.ListDeliveriesRequest, *, caller: Caller
    ) -> wpb.ListDeliveriesResponse:
        self.calls.append(("list_deliveries", request))
        self._mine(request.endpoint_id, caller)
        log = self.deliveries.get(request.endpoint_id, [])
        return wpb.ListDeliveriesResponse(
            data=log[: request.limit], has_more=len(log) > request.limit
        )

    async def resend_event(
        self, request: wpb.ResendEventRequest, *, caller: Caller
    ) -> wpb.Delivery:
        self.calls.append(("resend_event", request))
        self._mine(request.endpoint_id, caller)
        if not request.event_id.startswith("evt_"):
            raise UpstreamError(404, "event_not_found", "no such event")
        delivery = wpb.Delivery(
            id=f"dlv_{next(self._seq)}",
            endpoint_id=request.endpoint_id,
            event_id=request.event_id,
            event_type="payment.succeeded",
            status=wpb.DELIVERY_STATUS_PENDING,
            created_at_us=T0,
            next_attempt_at_us=T0,
        )
        self.deliveries.setdefault(request.endpoint_id, []).insert(0, delivery)
        return delivery


@dataclass
class WebhooksHarness:
    gw: Harness
    webhooks: FakeWebhooks

    @property
    def http(self) -> httpx.AsyncClient:
        return self.gw.http

    async def create(
        self, headers: dict[str, str], *, key: str | None = None, **body: object
    ) -> httpx.Response:
        payload = {"url": "https://merchant.example/hooks", "events": ["payment.succeeded"]}
        payload.update(body)  # type: ignore[arg-type]
        extra = {"Idempotency-Key": key} if key else {}
        return await self.http.post(
            "/v1/webhook_endpoints", json=payload, headers={**headers, **extra}
        )


@pytest.fixture
async def wh(db_url: str, tmp_path: Path) -> AsyncIterator[WebhooksHarness]:
    """The gateway on a migrated database, with a fake webhooks service behind it."""
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=db_url))
    store = GatewayStore(db)
    accounts, payments, webhooks = FakeAccounts(), FakePayments(), FakeWebhooks()
    app = create_app(
        settings=settings, store=store, accounts=accounts, payments=payments, webhooks=webhooks
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        harness = Harness(
            http=http, store=store, settings=settings, accounts=accounts, payments=payments
        )
        yield WebhooksHarness(gw=harness, webhooks=webhooks)
    await db.dispose()


async def test_creating_an_endpoint_shows_its_secret_once_and_never_again(
    wh: WebhooksHarness,
) -> None:
    h = await wh.gw.auth(WRITE)
    r = await wh.create(h, events=["payment.succeeded", "refund.succeeded"], description="orders")
    assert r.status_code == 201, r.text
    made = r.json()
    secret = made["secret"]
    assert secret.startswith("whsec_")
    assert made["id"].startswith("we_")
    assert made["object"] == "webhook_endpoint"
    assert made["url"] == "https://merchant.example/hooks"
    assert made["events"] == ["payment.succeeded", "refund.succeeded"]
    assert made["status"] == "enabled"
    assert made["description"] == "orders"
    assert r.headers["location"] == f"/v1/webhook_endpoints/{made['id']}"
    assert r.headers["cache-control"] == "no-store"

    got = await wh.http.get(f"/v1/webhook_endpoints/{made['id']}", headers=h)
    listed = await wh.http.get("/v1/webhook_endpoints", headers=h)
    for later in (got, listed):
        assert later.status_code == 200, later.text
        assert secret not in later.text
        assert "secret" not in json.dumps(later.json()).replace("previous_secret_expires", "")
    assert got.json() == {k: v for k, v in made.items() if k != "secret"}


async def test_the_endpoint_id_comes_from_the_idempotency_key_and_a_retry_replays_it(
    wh: WebhooksHarness,
) -> None:
    h = await wh.gw.auth(WRITE)
    first = await wh.create(h, key="create-endpoint-1")
    again = await wh.create(h, key="create-endpoint-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    creates = [req for name, req in wh.webhooks.calls if name == "create_endpoint"]
    assert len(creates) == 1  # the replay did not reach the service

    other_key = await wh.create(h, key="create-endpoint-2")
    assert other_key.json()["id"] != first.json()["id"]
    reused = await wh.create(h, key="create-endpoint-1", url="https://elsewhere.example/h")
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


async def test_the_stored_create_response_holds_the_secret_only_sealed(
    wh: WebhooksHarness,
) -> None:
    tenant, client_id, client_secret = await wh.gw.new_client(WRITE)
    h = {"Authorization": f"Bearer {await wh.gw.token(client_id, client_secret)}"}
    r = await wh.create(h, key="sealed-1")
    secret = r.json()["secret"]

    record = await wh.gw.store.get_idempotency(tenant, "sealed-1")
    assert record is not None
    assert record.response_body is not None
    assert secret.encode() not in record.response_body
    assert b"whsec_" not in record.response_body
    assert b"merchant.example" not in record.response_body
    sealer = ResponseSealer(wh.gw.settings.gateway.secret_key.get_secret_value().encode())
    opened = json.loads(sealer.open(record.response_body, context=f"{tenant}\x00sealed-1"))
    assert opened["secret"] == secret
    # Bound to its record: under another tenant or key it does not open.
    with pytest.raises(InvalidTag):
        sealer.open(record.response_body, context=f"{tenant}\x00sealed-2")


async def test_every_webhook_route_needs_the_webhooks_write_scope(wh: WebhooksHarness) -> None:
    owner = await wh.gw.auth(WRITE)
    endpoint_id = (await wh.create(owner)).json()["id"]
    calls_before = len(wh.webhooks.calls)
    base = f"/v1/webhook_endpoints/{endpoint_id}"
    routes = [
        ("POST", "/v1/webhook_endpoints", {"url": "https://m.example/h", "events": ["*"]}),
        ("GET", "/v1/webhook_endpoints", None),
        ("GET", base, None),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate_secret", {}),
        ("POST", f"{base}/enable", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/resend", {"event_id": "evt_1"}),
    ]
    # Every other scope, in the same tenant: not enough.
    others = await wh.gw.auth(
        ALL | {"risk:admin"}, tenant=wh.webhooks.endpoints[endpoint_id].tenant_id
    )
    for method, path, body in routes:
        r = await wh.http.request(method, path, json=body, headers=others)
        assert r.status_code == 403, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert "webhooks:write" in r.headers["www-authenticate"]
        anonymous = await wh.http.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
    assert len(wh.webhooks.calls) == calls_before  # nothing reached the service


async def test_another_tenants_endpoint_is_not_found(wh: WebhooksHarness) -> None:
    mine = await wh.gw.auth(WRITE)
    theirs = await wh.gw.auth(WRITE)  # a new tenant
    endpoint_id = (await wh.create(mine)).json()["id"]
    base = f"/v1/webhook_endpoints/{endpoint_id}"
    for method, path, body in [
        ("GET", base, None),
        ("DELETE", base, None),
        ("POST", f"{base}/rotate_secret", {}),
        ("POST", f"{base}/enable", None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/resend", {"event_id": "evt_1"}),
    ]:
        r = await wh.http.request(method, path, json=body, headers=theirs)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "webhook_endpoint_not_found"
    listed = await wh.http.get("/v1/webhook_endpoints", headers=theirs)
    assert listed.json() == {"data": [], "has_more": False}
    assert (await wh.http.get(base, headers=mine)).status_code == 200  # still there


async def test_rotating_returns_a_new_secret_and_passes_the_grace_period_on(
    wh: WebhooksHarness,
) -> None:
    h = await wh.gw.auth(WRITE)
    made = (await wh.create(h)).json()
    path = f"/v1/webhook_endpoints/{made['id']}/rotate_secret"

    r = await wh.http.post(path, json={"grace_period_s": 3600}, headers=h)
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != made["secret"]
    assert rotated["previous_secret_expires"] == "2023-11-14T23:13:20Z"
    assert r.headers["cache-control"] == "no-store"
    (_, request), *_ = [c for c in wh.webhooks.calls if c[0] == "rotate_secret"]
    assert request.grace_period_s == 3600  # type: ignore[attr-defined]

    no_body = await wh.http.post(path, headers=h)
    assert no_body.status_code == 200, no_body.text
    assert no_body.json()["secret"] != rotated["secret"]
    *_, (_, default) = [c for c in wh.webhooks.calls if c[0] == "rotate_secret"]
    assert default.grace_period_s == 0  # type: ignore[attr-defined]  # the configured default
    assert (
        rotated["secret"]
        not in (await wh.http.get(f"/v1/webhook_endpoints/{made['id']}", headers=h)).text
    )


@pytest.mark.parametrize(
    "body",
    [
        {"grace_period_s": -1},
        {"grace_period_s": 7 * 24 * 3600 + 1},
        {"grace_period_s": 1.5},
        {"grace_period_s": "60"},
        {"grace": 60},
    ],
)
async def test_a_bad_grace_period_is_refused(wh: WebhooksHarness, body: dict[str, object]) -> None:
    h = await wh.gw.auth(WRITE)
    made = (await wh.create(h)).json()
    r = await wh.http.post(
        f"/v1/webhook_endpoints/{made['id']}/rotate_secret", json=body, headers=h
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"


async def test_a_grace_period_of_exactly_seven_days_is_accepted(wh: WebhooksHarness) -> None:
    h = await wh.gw.auth(WRITE)
    made = (await wh.create(h)).json()
    path = f"/v1/webhook_endpoints/{made['id']}/rotate_secret"
    r = await wh.http.post(path, json={"grace_period_s": 7 * 24 * 3600}, headers=h)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://m.example/h", "events": []},
        {"url": "https://m.example/h"},
        {"url": "ftp://m.example/h", "events": ["*"]},
        {"url": "m.example/h", "events": ["*"]},
        {"url": "https://m.example/h", "events": ["Payment Succeeded"]},
        {"url": "https://m.example/h", "events": ["*"], "secret": "whsec_mine"},
        {"url": "https://m.example/h", "events": ["*"], "status": "disabled"},
        {"url": "https://m.example/" + "a" * 2048, "events": ["*"]},
        {"url": "https://m.example/h", "events": ["*"], "description": "d" * 501},
    ],
)
async def test_a_malformed_endpoint_is_refused_before_the_service(
    wh: WebhooksHarness, body: dict[str, object]
) -> None:
    h = await wh.gw.auth(WRITE)
    r = await wh.http.post("/v1/webhook_endpoints", json=body, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    assert wh.webhooks.calls == []


async def test_the_services_refusal_of_a_private_url_is_a_422_problem(wh: WebhooksHarness) -> None:
    h = await wh.gw.auth(WRITE)
    r = await wh.create(h, url="http://127.0.0.1:8080/hook")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "invalid_request"


async def test_endpoints_are_listed_newest_first_a_page_at_a_time(wh: WebhooksHarness) -> None:
    h = await wh.gw.auth(WRITE)
    ids = [(await wh.create(h)).json()["id"] for _ in range(3)]
    first = (await wh.http.get("/v1/webhook_endpoints?limit=2", headers=h)).json()
    assert [e["id"] for e in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = await wh.http.get(f"/v1/webhook_endpoints?limit=2&starting_after={ids[1]}", headers=h)
    assert [e["id"] for e in rest.json()["data"]] == [ids[0]]
    assert rest.json()["has_more"] is False
    for bad in ("limit=0", "limit=101"):
        assert (await wh.http.get(f"/v1/webhook_endpoints?{bad}", headers=h)).status_code == 422


async def test_a_deleted_endpoint_is_gone(wh: WebhooksHarness) -> None:
    h = await wh.gw.auth(WRITE)
    endpoint_id = (await wh.create(h)).json()["id"]
    r = await wh.http.delete(f"/v1/webhook_endpoints/{endpoint_id}", headers=h)
    assert r.status_code == 204
    assert r.content == b""
    again = await wh.http.get(f"/v1/webhook_endpoints/{endpoint_id}", headers=h)
    assert again.status_code == 404


async def test_a_disabled_endpoint_can_be_enabled_again(wh: WebhooksHarness) -> None:
    h = await wh.gw.auth(WRITE)
    endpoint_id = (await wh.create(h)).json()["id"]
    stored = wh.webhooks.endpoints[endpoint_id].endpoint
    stored.status = wpb.ENDPOINT_STATUS_DISABLED
    stored.disabled_reason = "failing_since_2026-01-01T00:00:00Z"
    got = (await wh.http.get(f"/v1/webhook_endpoints/{endpoint_id}", headers=h)).json()
    assert got["status"] == "disabled"
    assert got["disabled_reason"] == "failing_since_2026-01-01T00:00:00Z"
    r = await wh.http.post(f"/v1/webhook_endpoints/{endpoint_id}/enable", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "enabled"
    assert r.json()["disabled_reason"] is None


async def test_the_delivery_log_shows_each_attempt_with_its_status_code_and_latency(
    wh: WebhooksHarness,
) -> None:
    h = await wh.gw.auth(WRITE)
    endpoint_id = (await wh.create(h)).json()["id"]
    wh.webhooks.deliveries[endpoint_id] = [
        wpb.Delivery(
            id="dlv_2",
            endpoint_id=endpoint_id,
            event_id="evt_pay_2_payment.succeeded",
            event_type="payment.succeeded",
            status=wpb.DELIVERY_STATUS_PENDING,
            attempts_count=1,
            created_at_us=T0,
            next_attempt_at_us=T0 + 30_000_000,
            attempts=[
                wpb.Attempt(
                    number=1, started_at_us=T0, status_code=0, latency_ms=5000, error="timeout"
                )
            ],
        ),
        wpb.Delivery(
            id="dlv_1",
            endpoint_id=endpoint_id,
            event_id="evt_pay_1_payment.succeeded",
            event_type="payment.succeeded",
            status=wpb.DELIVERY_STATUS_SUCCEEDED,
            attempts_count=3,
            created_at_us=T0,
            attempts=[
                wpb.Attempt(
                    number=1, started_at_us=T0, status_code=500, latency_ms=12, error="http_500"
                ),
                wpb.Attempt(
                    number=2, started_at_us=T0 + 1, status_code=503, latency_ms=8, error="http_503"
                ),
                wpb.Attempt(number=3, started_at_us=T0 + 2, status_code=200, latency_ms=9),
            ],
        ),
    ]
    r = await wh.http.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries?limit=10", headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["has_more"] is False
    pending, done = page["data"]
    assert pending["status"] == "pending"
    assert pending["next_attempt"] == "2023-11-14T22:13:50Z"
    assert pending["attempts"] == [
        {
            "number": 1,
            "started": "2023-11-14T22:13:20Z",
            "status_code": None,
            "latency_ms": 5000,
            "error": "timeout",
        }
    ]
    assert done["status"] == "succeeded"
    assert done["next_attempt"] is None
    assert done["attempts_count"] == 3
    assert [(a["status_code"], a["latency_ms"], a["error"]) for a in done["attempts"]] == [
        (500, 12, "http_500"), (503, 8, "http_503"), (200, 9, None),
    ]  # fmt: skip


async def test_resending_an_event_answers_the_new_delivery(wh: WebhooksHarness) -> None:
    h = await wh.gw.auth(WRITE)
    endpoint_id = (await wh.create(h)).json()["id"]
    path = f"/v1/webhook_endpoints/{endpoint_id}/deliveries/resend"
    r = await wh.http.post(path, json={"event_id": "evt_pay_1_payment.succeeded"}, headers=h)
    assert r.status_code == 201, r.text
    delivery = r.json()
    assert delivery["object"] == "webhook_delivery"
    assert delivery["event_id"] == "evt_pay_1_payment.succeeded"
    assert delivery["endpoint_id"] == endpoint_id
    assert delivery["status"] == "pending"
    unknown = await wh.http.post(path, json={"event_id": "nope"}, headers=h)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "event_not_found"
    missing = await wh.http.post(path, json={}, headers=h)
    assert missing.status_code == 422


async def test_without_a_webhooks_service_the_routes_answer_503(gw: Harness) -> None:
    h = await gw.auth(WRITE)
    r = await gw.http.get("/v1/webhook_endpoints", headers=h)
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "service_unavailable"


async def test_endpoint_changes_are_audited_with_the_host_and_never_the_secret_or_path(
    wh: WebhooksHarness,
) -> None:
    h = await wh.gw.auth(WRITE)
    made = (await wh.create(h, url="https://merchant.example/hooks?token=s3cr3t")).json()
    endpoint = made["id"]
    rotated = await wh.http.post(f"/v1/webhook_endpoints/{endpoint}/rotate_secret", headers=h)
    await wh.http.post(f"/v1/webhook_endpoints/{endpoint}/enable", headers=h)
    await wh.http.delete(f"/v1/webhook_endpoints/{endpoint}", headers=h)
    entries = [
        e for e in await wh.gw.store.recent_audit(100) if e.action.startswith("webhook_endpoint.")
    ]
    assert sorted(e.action for e in entries) == [
        "webhook_endpoint.created",
        "webhook_endpoint.deleted",
        "webhook_endpoint.enabled",
        "webhook_endpoint.secret_rotated",
    ]
    assert {e.target for e in entries} == {endpoint}
    created = next(e for e in entries if e.action == "webhook_endpoint.created")
    assert created.details == {"host": "merchant.example", "events": ["payment.succeeded"]}
    everything = repr([vars(e) if hasattr(e, "__dict__") else e for e in entries])
    for secret in (made["secret"], rotated.json()["secret"], "s3cr3t", "/hooks"):
        assert secret not in everything
