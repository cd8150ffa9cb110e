"""The domain metrics of the embedded platform (five services in this process), read from
the registry around one payment through the gateway: each service counts under its name."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from paymesh.contracts.events import TOPIC_PAYMENTS

from .conftest import Api, Running


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _until(predicate, timeout_s: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_one_payment_is_counted_by_every_service_it_crosses(embedded: Running) -> None:
    api = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    succeeded = {
        "service": "payments",
        "kind": "payment",
        "status": "succeeded",
        "failure_code": "",
    }
    moved = {"service": "payments", "kind": "payment", "currency": "USD"}
    approved = {"service": "risk", "decision": "approve"}
    ok = {"service": "accounts", "result": "ok"}
    handled = {"service": "risk", "group": "risk", "topic": TOPIC_PAYMENTS}
    try:
        customer = (await api.post("/v1/accounts", {"currency": "USD", "type": "customer"}))["id"]
        merchant = (await api.post("/v1/accounts", {"currency": "USD", "type": "merchant"}))["id"]
        await api.post(
            "/v1/topups",
            {"account_id": customer, "amount": 10_000, "currency": "USD"},
            key=str(uuid.uuid4()),
        )
        await _until(lambda: _value("paymesh_outbox_pending_rows", service="payments") == 0)
        before = {
            "completed": _value("paymesh_payments_completed_total", **succeeded),
            "amount": _value("paymesh_payments_amount_minor_total", **moved),
            "risk": _value("paymesh_risk_decisions_total", **approved),
            "ledger": _value("paymesh_ledger_transfers_total", **ok),
            "first": _value(
                "paymesh_idempotency_requests_total", service="gateway", outcome="first"
            ),
            "replayed": _value(
                "paymesh_idempotency_requests_total", service="gateway", outcome="replayed"
            ),
            "handled": _value("paymesh_events_handled_total", **handled),
        }
        body = {
            "payer_account_id": customer,
            "payee_account_id": merchant,
            "amount": 2_500,
            "currency": "USD",
            "capture_method": "automatic",
        }
        key = str(uuid.uuid4())
        payment = await api.post("/v1/payments", body, key=key)
        assert payment["status"] == "succeeded"
        await api.post("/v1/payments", body, key=key)  # a replay: counted as such, nothing else
        assert _value("paymesh_payments_completed_total", **succeeded) == before["completed"] + 1
        assert _value("paymesh_payments_amount_minor_total", **moved) == before["amount"] + 2_500
        assert _value("paymesh_risk_decisions_total", **approved) == before["risk"] + 1
        # The hold, then the capture: two transfers decided ok.
        assert _value("paymesh_ledger_transfers_total", **ok) == before["ledger"] + 2
        first = _value("paymesh_idempotency_requests_total", service="gateway", outcome="first")
        replayed = _value(
            "paymesh_idempotency_requests_total", service="gateway", outcome="replayed"
        )
        assert (first, replayed) == (before["first"] + 1, before["replayed"] + 1)
        # Risk consumes the payment's events from the bus (payment.succeeded at least).
        await _until(lambda: _value("paymesh_events_handled_total", **handled) > before["handled"])
        await _until(lambda: _value("paymesh_event_consumer_lag", **handled) == 0)
        assert _value("paymesh_ledger_chain_head_seq", service="accounts") >= 2
    finally:
        await api.close()
