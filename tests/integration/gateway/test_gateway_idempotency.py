"""Idempotency-Key: replay, reuse, in-progress, required keys, retries after failures."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from paymesh.gateway.domain import IdempotencyRecord, derive_id, fingerprint
from tests.fakes import unavailable

PAY = {"payments:read", "payments:write"}


def _payment(**over: Any) -> dict[str, Any]:
    body = {
        "payer_account_id": "acct_payer",
        "payee_account_id": "acct_payee",
        "amount": 1250,
        "currency": "USD",
        "capture_method": "automatic",
    }
    body.update(over)
    return body


async def test_same_key_and_body_replays_the_first_response_byte_for_byte(gw: Any) -> None:
    headers = {**await gw.auth(PAY), "Idempotency-Key": "order-1042"}
    first = await gw.http.post("/v1/payments", json=_payment(), headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # Another order of the same members is the same request.
    reordered = json.dumps(dict(reversed(list(_payment().items()))))
    again = await gw.http.post(
        "/v1/payments", content=reordered, headers={**headers, "Content-Type": "application/json"}
    )
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["location"] == first.headers["location"]
    assert len(gw.payments.create_calls) == 1


async def test_same_key_with_another_body_is_a_422_key_reused(gw: Any) -> None:
    headers = {**await gw.auth(PAY), "Idempotency-Key": "k-1"}
    assert (await gw.http.post("/v1/payments", json=_payment(), headers=headers)).status_code == 201
    r = await gw.http.post("/v1/payments", json=_payment(amount=999), headers=headers)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "idempotency_key_reused"


async def test_same_key_on_another_path_is_a_422_key_reused(gw: Any) -> None:
    headers = {**await gw.auth(PAY | {"accounts:write"}), "Idempotency-Key": "k-2"}
    assert (await gw.http.post("/v1/payments", json=_payment(), headers=headers)).status_code == 201
    r = await gw.http.post(
        "/v1/accounts", json={"currency": "USD", "type": "customer"}, headers=headers
    )
    assert r.status_code == 422
    assert r.json()["code"] == "idempotency_key_reused"


async def test_same_key_while_the_first_request_runs_is_a_409(gw: Any) -> None:
    headers = {**await gw.auth(PAY), "Idempotency-Key": "slow-1"}
    gw.payments.gate = asyncio.Event()
    first = asyncio.create_task(gw.http.post("/v1/payments", json=_payment(), headers=headers))
    await gw.payments.entered.wait()
    second = await gw.http.post("/v1/payments", json=_payment(), headers=headers)
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_key_in_progress"
    gw.payments.gate.set()
    assert (await first).status_code == 201
    third = await gw.http.post("/v1/payments", json=_payment(), headers=headers)
    assert third.headers["idempotent-replayed"] == "true"
    assert len(gw.payments.create_calls) == 1


async def test_money_moving_posts_without_a_key_are_a_400(gw: Any) -> None:
    headers = await gw.auth(PAY)
    cases = [
        ("/v1/payments", _payment()),
        ("/v1/payments/pay_x/capture", {}),
        ("/v1/payments/pay_x/cancel", None),
        ("/v1/refunds", {"payment_id": "pay_x"}),
        ("/v1/topups", {"account_id": "acct_x", "amount": 5, "currency": "USD"}),
    ]
    for path, body in cases:
        r = await gw.http.post(path, json=body, headers=headers)
        assert r.status_code == 400, path
        assert r.json()["code"] == "idempotency_key_required", path
    assert gw.payments.create_calls == []


async def test_opening_an_account_needs_no_key_but_honours_one(gw: Any) -> None:
    headers = await gw.auth({"accounts:write"})
    body = {"currency": "USD", "type": "customer"}
    a = await gw.http.post("/v1/accounts", json=body, headers=headers)
    b = await gw.http.post("/v1/accounts", json=body, headers=headers)
    assert a.json()["id"] != b.json()["id"]
    keyed = {**headers, "Idempotency-Key": "acct-1"}
    c = await gw.http.post("/v1/accounts", json=body, headers=keyed)
    d = await gw.http.post("/v1/accounts", json=body, headers=keyed)
    assert c.content == d.content


async def test_keys_are_scoped_per_tenant(gw: Any) -> None:
    a = {**await gw.auth(PAY), "Idempotency-Key": "shared"}
    b = {**await gw.auth(PAY), "Idempotency-Key": "shared"}
    ra = await gw.http.post("/v1/payments", json=_payment(), headers=a)
    rb = await gw.http.post("/v1/payments", json=_payment(), headers=b)
    assert rb.status_code == 201
    assert "idempotent-replayed" not in rb.headers
    assert ra.json()["id"] != rb.json()["id"]


async def test_a_5xx_releases_the_key_and_the_retry_reaches_the_service_with_the_same_id(
    gw: Any,
) -> None:
    headers = {**await gw.auth(PAY), "Idempotency-Key": "flaky-1"}
    gw.payments.fail_next = unavailable("payments is restarting")
    failed = await gw.http.post("/v1/payments", json=_payment(), headers=headers)
    assert failed.status_code == 503
    assert failed.json()["code"] == "service_unavailable"
    retry = await gw.http.post("/v1/payments", json=_payment(), headers=headers)
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    first_id, second_id = gw.payments.create_calls
    assert first_id == second_id == retry.json()["id"]
    assert len(gw.payments.payments) == 1


async def test_object_ids_are_derived_from_tenant_key_and_path(gw: Any) -> None:
    auth = await gw.auth(PAY)
    r = await gw.http.post(
        "/v1/payments", json=_payment(), headers={**auth, "Idempotency-Key": "derive-me"}
    )
    payment = gw.payments.payments[r.json()["id"]]
    assert r.json()["id"] == derive_id(
        "pay", tenant_id=payment.tenant_id, key="derive-me", path="/v1/payments"
    )


async def test_a_4xx_answer_is_recorded_and_replayed(gw: Any) -> None:
    headers = {**await gw.auth(PAY), "Idempotency-Key": "cap-1"}
    r1 = await gw.http.post("/v1/payments/pay_missing/capture", json={}, headers=headers)
    r2 = await gw.http.post("/v1/payments/pay_missing/capture", json={}, headers=headers)
    assert r1.status_code == r2.status_code == 404
    assert r1.content == r2.content
    assert r2.headers["idempotent-replayed"] == "true"


async def test_an_overlong_key_is_a_400(gw: Any) -> None:
    headers = {**await gw.auth(PAY), "Idempotency-Key": "k" * 256}
    r = await gw.http.post("/v1/payments", json=_payment(), headers=headers)
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_idempotency_key"


async def test_a_claim_left_by_a_crashed_request_is_taken_over_once_stale(gw: Any) -> None:
    auth = await gw.auth(PAY)
    r0 = await gw.http.post(
        "/v1/payments", json=_payment(amount=1), headers={**auth, "Idempotency-Key": "probe"}
    )
    tenant = gw.payments.payments[r0.json()["id"]].tenant_id
    now = time.time_ns() // 1000
    crashed = IdempotencyRecord(
        tenant_id=tenant,
        key="crashed-1",
        fingerprint=fingerprint("POST", "/v1/payments", json.dumps(_payment()).encode()),
        state="in_progress",
        owner="dead-process",
        created_at_us=now - 3600 * 1_000_000,
        expires_at_us=now + 3600 * 1_000_000,
    )
    assert await gw.store.claim_idempotency(crashed)
    r = await gw.http.post(
        "/v1/payments", json=_payment(), headers={**auth, "Idempotency-Key": "crashed-1"}
    )
    assert r.status_code == 201
    assert r.json()["id"] == derive_id(
        "pay", tenant_id=tenant, key="crashed-1", path="/v1/payments"
    )


async def test_a_new_clients_secret_is_replayed_but_never_stored_in_clear_text(gw: Any) -> None:
    import sqlalchemy as sa

    from paymesh.gateway.tables import idempotency_keys

    operator = {**await gw.auth({"admin"}), "Idempotency-Key": "new-client-1"}
    tenant = await gw.http.post("/v1/tenants", json={"name": "acme"}, headers=operator)
    assert tenant.status_code == 201
    headers = {**operator, "Idempotency-Key": "new-client-2"}
    path = f"/v1/tenants/{tenant.json()['id']}/clients"
    first = await gw.http.post(path, json={"scopes": ["payments:read"]}, headers=headers)
    assert first.status_code == 201
    secret = first.json()["client_secret"]
    replay = await gw.http.post(path, json={"scopes": ["payments:read"]}, headers=headers)
    assert replay.content == first.content

    async with gw.store.db.read() as conn:
        bodies = (await conn.execute(sa.select(idempotency_keys.c.response_body))).scalars().all()
    assert bodies
    assert not any(secret.encode() in (body or b"") for body in bodies)
    assert not any(b"client_secret" in (body or b"") for body in bodies)


async def _manual_payment(gw: Any, auth: dict[str, str], key: str) -> str:
    r = await gw.http.post(
        "/v1/payments",
        json=_payment(capture_method="manual"),
        headers={**auth, "Idempotency-Key": key},
    )
    assert r.json()["status"] == "requires_capture"
    payment_id: str = r.json()["id"]
    return payment_id


async def test_a_capture_retried_after_a_lost_answer_carries_the_request_id_of_the_first(
    gw: Any,
) -> None:
    auth = await gw.auth(PAY)
    pay_id = await _manual_payment(gw, auth, "pay-1")
    path = f"/v1/payments/{pay_id}/capture"
    # payments captured it and died before answering: the gateway answers 503, frees the key.
    gw.payments.fail_next_action = unavailable("payments is restarting")
    failed = await gw.http.post(path, json={}, headers={**auth, "Idempotency-Key": "cap-9"})
    assert failed.status_code == 503
    retry = await gw.http.post(path, json={}, headers={**auth, "Idempotency-Key": "cap-9"})
    assert (retry.status_code, retry.json()["status"]) == (200, "succeeded")
    [(_, first), (_, second)] = gw.payments.capture_calls
    tenant_id = gw.payments.payments[pay_id].tenant_id
    assert first == second == derive_id("capreq", tenant_id=tenant_id, key="cap-9", path=path)
    # Another key is another request, with another request_id: a true second capture.
    other = await gw.http.post(path, json={}, headers={**auth, "Idempotency-Key": "cap-10"})
    assert (other.status_code, other.json()["code"]) == (409, "invalid_state")
    assert gw.payments.capture_calls[-1][1] not in ("", first)


async def test_a_cancel_retried_after_a_lost_answer_carries_the_request_id_of_the_first(
    gw: Any,
) -> None:
    auth = await gw.auth(PAY)
    pay_id = await _manual_payment(gw, auth, "pay-2")
    path = f"/v1/payments/{pay_id}/cancel"
    gw.payments.fail_next_action = unavailable("payments is restarting")
    failed = await gw.http.post(path, headers={**auth, "Idempotency-Key": "cancel-1"})
    assert failed.status_code == 503
    retry = await gw.http.post(path, headers={**auth, "Idempotency-Key": "cancel-1"})
    assert (retry.status_code, retry.json()["status"]) == (200, "canceled")
    other = await gw.http.post(path, headers={**auth, "Idempotency-Key": "cancel-2"})
    assert (other.status_code, other.json()["code"]) == (409, "invalid_state")
    [(_, first), (_, second), (_, third)] = gw.payments.cancel_calls
    tenant_id = gw.payments.payments[pay_id].tenant_id
    assert first == second == derive_id("canreq", tenant_id=tenant_id, key="cancel-1", path=path)
    assert third not in ("", first)
