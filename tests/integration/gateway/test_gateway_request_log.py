"""Request ids and the access log: every answer carries X-Request-Id (kept from the client
when it is a sane one, made otherwise), and every request writes one http_request line
naming the route template, never a token, secret or query string."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes import unavailable
from tests.integration.gateway.conftest import ALL, Harness
from tests.loglines import captured, only

NEW_ID = re.compile(r"[0-9a-f]{32}")


def _access(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    return only(lines, "http_request", request_id=request_id)


async def test_a_clients_request_id_is_echoed_bound_to_the_lines_and_in_the_access_line(
    gw: Harness,
) -> None:
    _, client_id, secret = await gw.new_client(ALL)
    token = await gw.token(client_id, secret)
    with captured() as lines:
        r = await gw.http.get(
            "/v1/payments?limit=5",
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "client-req-1"},
        )
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "client-req-1"
    line = _access(lines, "client-req-1")
    assert line["method"] == "GET"
    assert line["route"] == "/v1/payments"
    assert line["status"] == 200
    assert line["client_id"] == client_id
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert {"timestamp", "level", "logger"} <= line.keys()
    assert token not in json.dumps(lines)
    assert "limit=5" not in json.dumps(line)


async def test_without_a_request_id_or_with_an_unfit_one_the_gateway_makes_one(
    gw: Harness,
) -> None:
    made = []
    for sent in (None, b"x" * 129, b"has space", "caf\u00e9".encode(), b"eyJa.eyJb.c"):
        headers = {} if sent is None else {"X-Request-Id": sent}
        r = await gw.http.get("/.well-known/jwks.json", headers=headers)
        assert r.status_code == 200
        assert NEW_ID.fullmatch(r.headers["x-request-id"]), (sent, r.headers)
        made.append(r.headers["x-request-id"])
    assert len(set(made)) == len(made)


async def test_every_answer_carries_the_request_id_whatever_layer_answered(
    gw: Harness,
) -> None:
    auth = await gw.auth(ALL)

    async def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("unexpected")

    async def down(*_a: Any, **_k: Any) -> Any:
        raise unavailable("payments is down")

    async def db_down(*_a: Any, **_k: Any) -> Any:
        raise ConnectionRefusedError("no database")

    cases: list[tuple[int, str, str, dict[str, Any]]] = [
        (404, "GET", "/v1/nothing-here", {}),  # no route (the router)
        (405, "PUT", "/v1/payments", {}),  # the router
        (401, "GET", "/v1/payments", {}),  # authentication
        (422, "GET", "/v1/payments?limit=0", {"headers": auth}),  # validation
        (413, "POST", "/v1/accounts", {"headers": auth, "content": b"x" * (70 * 1024)}),
        (404, "GET", "/v1/payments/pay_missing", {"headers": auth}),  # a service's answer
    ]
    answered = []
    for i, (status, method, path, kwargs) in enumerate(cases):
        rid = f"layer-{i}"
        headers = {**kwargs.pop("headers", {}), "X-Request-Id": rid}
        r = await gw.http.request(method, path, headers=headers, **kwargs)
        assert (r.status_code, r.headers.get("x-request-id")) == (status, rid), (path, r.text)
        answered.append(rid)
    for status, fake in ((500, boom), (503, down), (503, db_down)):
        gw.payments.GetPayment = fake  # type: ignore[method-assign]
        rid = f"failure-{status}-{fake.__name__}"
        r = await gw.http.get("/v1/payments/pay_1", headers={**auth, "X-Request-Id": rid})
        assert (r.status_code, r.headers.get("x-request-id")) == (status, rid), r.text
    # 429: client credentials guessed once too often (per client id).
    form = {"grant_type": "client_credentials", "client_id": "cli_guess", "client_secret": "no"}
    statuses = []
    for i in range(gw.settings.gateway.auth_failure_burst + 1):
        r = await gw.http.post("/v1/oauth/token", data=form, headers={"X-Request-Id": f"guess-{i}"})
        assert r.headers["x-request-id"] == f"guess-{i}"
        statuses.append(r.status_code)
    assert statuses[-1] == 429
    assert set(statuses[:-1]) == {401}


async def test_the_access_line_names_the_route_template_not_the_path_nor_the_query(
    gw: Harness,
) -> None:
    auth = await gw.auth(ALL)
    with captured() as lines:
        await gw.http.get(
            "/v1/payments/pay_Private123?access_token=eyJx.eyJy.zzz&note=hello",
            headers={**auth, "X-Request-Id": "tmpl-1"},
        )
        await gw.http.get("/v1/no/such/route?client_secret=abc", headers={"X-Request-Id": "nr-1"})
    line = _access(lines, "tmpl-1")
    assert (line["route"], line["status"]) == ("/v1/payments/{payment_id}", 404)
    unmatched = _access(lines, "nr-1")
    assert (unmatched["route"], unmatched["status"], unmatched["client_id"]) == (None, 404, None)
    text = json.dumps(lines)
    for private in ("pay_Private123", "eyJx", "hello", "no/such/route", "abc"):
        assert private not in text


async def test_the_token_endpoints_line_names_the_client_and_holds_no_secret(
    gw: Harness,
) -> None:
    _, client_id, secret = await gw.new_client(ALL)
    with captured() as lines:
        r = await gw.http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
            headers={"X-Request-Id": "tok-1"},
        )
    assert r.status_code == 200
    line = _access(lines, "tok-1")
    assert (line["route"], line["status"], line["client_id"]) == (
        "/v1/oauth/token",
        200,
        client_id,
    )
    text = json.dumps(lines)
    assert secret not in text
    assert r.json()["access_token"] not in text
