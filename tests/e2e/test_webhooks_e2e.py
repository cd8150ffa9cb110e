"""Webhooks end to end on the embedded platform: a payment made through the gateway
reaches a merchant's receiver (a real HTTP server) as a signed event that the
public helper verifies; endpoints, rotation, the delivery log and resending
through REST; scopes and tenancy."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import pytest

from paymesh.platform.logging import configure_logging, json_formatter
from paymesh.webhooks.signature import NoMatchingSignature, SignatureError, verify
from tests.conftest import restore_test_logging

from .conftest import Api, Running
from .receiver import Received, Receiver

SHOP_SCOPES = ["accounts:read", "accounts:write", "payments:read", "payments:write"]


class Gateway(Protocol):
    """A running platform as a client sees it: the embedded one or the distributed one."""

    url: str
    creds: dict[str, str]


def _key() -> str:
    return str(uuid.uuid4())


@contextlib.contextmanager
def log_lines() -> Iterator[io.StringIO]:
    """Every log line of this process at DEBUG and up, as production writes them."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(json_formatter())  # the production processors, redaction included
    configure_logging("DEBUG")
    logging.getLogger().addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger().removeHandler(handler)
        restore_test_logging()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def _pay(api: Api, amount: int = 2_500) -> dict[str, Any]:
    """Open a customer and a merchant, fund the customer, pay the merchant (captured)."""
    customer = await api.post("/v1/accounts", {"currency": "USD", "type": "customer"}, key=_key())
    merchant = await api.post("/v1/accounts", {"currency": "USD", "type": "merchant"}, key=_key())
    await api.post(
        "/v1/topups",
        {"account_id": customer["id"], "amount": 10_000, "currency": "USD"},
        key=_key(),
    )
    payment = await api.post(
        "/v1/payments",
        {
            "payer_account_id": customer["id"],
            "payee_account_id": merchant["id"],
            "amount": amount,
            "currency": "USD",
            "capture_method": "automatic",
        },
        key=_key(),
    )
    assert payment["status"] == "succeeded", payment
    return payment


async def _delivered(receiver: Receiver, payment_id: str, count: int = 1) -> list[Received]:
    """The first `count` deliveries of `payment_id`'s payment.succeeded event."""
    seen = 0
    while True:
        got = await receiver.wait_for(seen + 1)
        seen = len(got)
        mine = [r for r in got if r.event["data"]["id"] == payment_id]
        if len(mine) >= count:
            return mine[:count]


async def _succeeded_delivery(api: Api, endpoint_id: str, event_id: str) -> dict[str, Any]:
    """The endpoint's delivery of `event_id`, once the service has logged it succeeded."""
    async with asyncio.timeout(30):
        while True:
            log = await api.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries?limit=100")
            done = [
                d for d in log["data"] if d["event_id"] == event_id and d["status"] == "succeeded"
            ]
            if done:
                return done[0]
            await asyncio.sleep(0.1)


async def payment_webhook_arrives_signed(platform: Gateway, receiver: Receiver) -> None:
    """The done-when of webhooks: pay through the gateway, get a verified payment.succeeded."""
    demo = await Api.login(
        platform.url, platform.creds["client_id"], platform.creds["client_secret"]
    )
    try:
        endpoint = await demo.post(
            "/v1/webhook_endpoints",
            {"url": receiver.url, "events": ["payment.succeeded"], "description": "e2e"},
            key=_key(),
        )
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        payment = await _pay(demo)

        (delivery,) = await _delivered(receiver, payment["id"])
        assert delivery.method == "POST"
        assert delivery.path == "/hooks/paymesh"
        verify(delivery.body, delivery.headers["paymesh-signature"], secret)
        event = delivery.event
        assert event["type"] == "payment.succeeded"
        assert event["data"]["amount"] == 2_500
        assert delivery.headers["paymesh-event-id"] == event["id"]
        with pytest.raises(NoMatchingSignature):
            verify(delivery.body, delivery.headers["paymesh-signature"], "whsec_not_the_secret")
        with pytest.raises(SignatureError):  # a body changed in transit
            verify(delivery.body + b" ", delivery.headers["paymesh-signature"], secret)
        # It subscribed to payment.succeeded only: the top-up's event was not sent.
        assert {r.event["type"] for r in receiver.requests} == {"payment.succeeded"}
    finally:
        await demo.close()


async def test_a_payment_through_the_gateway_arrives_as_a_signed_webhook(
    embedded: Running, receiver: Receiver
) -> None:
    await payment_webhook_arrives_signed(embedded, receiver)


async def test_the_delivery_log_and_a_resend_through_rest(
    embedded: Running, receiver: Receiver
) -> None:
    demo = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    try:
        with log_lines() as lines:
            endpoint = await demo.post(
                "/v1/webhook_endpoints", {"url": receiver.url, "events": ["*"]}, key=_key()
            )
            secret = endpoint["secret"]
            payment = await _pay(demo)
            (first,) = await _delivered(receiver, payment["id"])
            event_id = first.event["id"]

            delivery = await _succeeded_delivery(demo, endpoint["id"], event_id)
            assert delivery["event_type"] == "payment.succeeded"
            assert delivery["attempts_count"] == 1
            (attempt,) = delivery["attempts"]
            assert attempt["status_code"] == 200
            assert attempt["latency_ms"] >= 0
            assert attempt["error"] is None

            resent = await demo.post(
                f"/v1/webhook_endpoints/{endpoint['id']}/deliveries/resend", {"event_id": event_id}
            )
            assert resent["event_id"] == event_id
            assert resent["id"] != delivery["id"]
            _, second = await _delivered(receiver, payment["id"], count=2)
            assert second.event["id"] == event_id
            assert second.body == first.body  # the same event...
            verify(second.body, second.headers["paymesh-signature"], secret)  # ...signed again
            assert second.headers["paymesh-delivery-id"] != first.headers["paymesh-delivery-id"]

            # The secret was shown once: never in a later answer...
            for path in ("/v1/webhook_endpoints", f"/v1/webhook_endpoints/{endpoint['id']}"):
                assert secret not in (await demo.http.get(path)).text
    finally:
        await demo.close()
    # ...and never in a log line of any service.
    assert "webhook_endpoint_created" in lines.getvalue()  # the logs were captured
    assert secret not in lines.getvalue()


async def test_rotation_keeps_the_old_secret_verifying_during_the_grace_period(
    embedded: Running, receiver: Receiver
) -> None:
    demo = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    try:
        endpoint = await demo.post(
            "/v1/webhook_endpoints",
            {"url": receiver.url, "events": ["payment.succeeded"]},
            key=_key(),
        )
        old = endpoint["secret"]
        rotated = await demo.post(
            f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
            {"grace_period_s": 3600},
            key=_key(),
            status=200,
        )
        new = rotated["secret"]
        assert new != old
        assert rotated["previous_secret_expires"] is not None
        payment = await _pay(demo)
        (delivery,) = await _delivered(receiver, payment["id"])
        header = delivery.headers["paymesh-signature"]
        assert header.count("v1=") == 2
        verify(delivery.body, header, old)  # a merchant who has not switched yet
        verify(delivery.body, header, new)  # and one who has
    finally:
        await demo.close()


async def test_endpoints_need_the_scope_and_stay_within_their_tenant(
    embedded: Running, receiver: Receiver
) -> None:
    creds = embedded.creds
    demo = await Api.login(embedded.url, creds["client_id"], creds["client_secret"])
    operator = await Api.login(
        embedded.url, creds["operator_client_id"], creds["operator_client_secret"]
    )
    other_tenant = await operator.post("/v1/tenants", {"name": "elsewhere"}, key=_key())
    clients = {}
    for name, scopes in (("no_scope", SHOP_SCOPES), ("other", ["webhooks:write"])):
        made = await operator.post(
            f"/v1/tenants/{other_tenant['id']}/clients", {"scopes": scopes}, key=_key()
        )
        clients[name] = await Api.login(embedded.url, made["client_id"], made["client_secret"])
    try:
        endpoint = await demo.post(
            "/v1/webhook_endpoints", {"url": receiver.url, "events": ["*"]}, key=_key()
        )
        path = f"/v1/webhook_endpoints/{endpoint['id']}"
        listed = await demo.get("/v1/webhook_endpoints?limit=100")
        assert endpoint["id"] in [e["id"] for e in listed["data"]]
        assert "secret" not in (await demo.get(path))

        no_scope, other = clients["no_scope"], clients["other"]
        denied = await no_scope.http.post(
            "/v1/webhook_endpoints", json={"url": receiver.url, "events": ["*"]}
        )
        assert denied.status_code == 403
        assert denied.json()["code"] == "insufficient_scope"
        assert (await no_scope.http.get("/v1/webhook_endpoints")).status_code == 403

        not_theirs = await other.http.get(path)
        assert not_theirs.status_code == 404
        assert not_theirs.json()["code"] == "webhook_endpoint_not_found"
        assert (await other.http.delete(path)).status_code == 404
        assert (await other.http.post(f"{path}/rotate_secret", json={})).status_code == 404
        assert (await other.get("/v1/webhook_endpoints"))["data"] == []

        enabled = await demo.post(f"{path}/enable", {}, key=_key(), status=200)
        assert (enabled["id"], enabled["status"]) == (endpoint["id"], "enabled")
        assert "secret" not in enabled

        assert (await demo.http.delete(path)).status_code == 204
        assert (await demo.http.get(path)).status_code == 404
        listed = await demo.get("/v1/webhook_endpoints?limit=100")
        assert endpoint["id"] not in [e["id"] for e in listed["data"]]
    finally:
        for api in (demo, operator, *clients.values()):
            await api.close()
