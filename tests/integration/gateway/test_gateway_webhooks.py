"""The webhook endpoint routes over a real store (SQLite and PostgreSQL), with a
fake webhooks service (tests/fakes, called like its stub) behind it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidTag

from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.security import ResponseSealer
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.payments import FakePayments
from tests.fakes.webhooks import T0, FakeWebhooks
from tests.integration.gateway.conftest import ALL, Harness

WRITE = {"webhooks:write"}


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
    store = SqlGatewayStore(db)
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
