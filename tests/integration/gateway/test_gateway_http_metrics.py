"""Every request the gateway answers is timed under its route template, method and status;
no id, no raw path and no made-up method ever becomes a label."""

from __future__ import annotations

import secrets

from prometheus_client import REGISTRY

from tests.integration.gateway.conftest import ALL, Harness

NAME = "paymesh_http_server_request_duration_seconds"


def count(method: str, route: str, status: int) -> float:
    labels = {"service": "gateway", "method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value(f"{NAME}_count", labels) or 0.0


def routes_labelled() -> set[str]:
    return {
        s.labels["route"]
        for family in REGISTRY.collect()
        if family.name == NAME
        for s in family.samples
        if s.labels.get("service") == "gateway"
    }


async def test_a_request_is_timed_under_its_route_template_never_its_path(gw: Harness) -> None:
    headers = await gw.auth(ALL)
    payment_id = f"pay_{secrets.token_hex(8)}"
    before = count("GET", "/v1/payments/{payment_id}", 404)
    r = await gw.http.get(f"/v1/payments/{payment_id}", headers=headers)
    assert r.status_code == 404
    assert count("GET", "/v1/payments/{payment_id}", 404) == before + 1
    assert not any(payment_id in route for route in routes_labelled())


async def test_a_path_no_route_matches_is_unmatched(gw: Harness) -> None:
    before = count("GET", "unmatched", 404)
    odd = f"/v1/{secrets.token_hex(6)}/{secrets.token_hex(6)}"
    r = await gw.http.get(odd)
    assert r.status_code == 404
    assert count("GET", "unmatched", 404) == before + 1
    assert odd not in routes_labelled()


async def test_a_method_outside_http_usual_ones_is_other(gw: Harness) -> None:
    before = count("other", "/v1/payments", 405)
    r = await gw.http.request(f"BREW{secrets.token_hex(2).upper()}", "/v1/payments")
    assert r.status_code == 405
    assert count("other", "/v1/payments", 405) == before + 1


async def test_a_body_refused_before_routing_is_timed_under_the_route_it_was_sent_to(
    gw: Harness,
) -> None:
    before = count("POST", "/v1/payments", 413)
    too_big = b"x" * (gw.settings.gateway.max_body_bytes + 1)
    r = await gw.http.post(
        "/v1/payments", content=too_big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert count("POST", "/v1/payments", 413) == before + 1


async def test_an_answer_made_by_the_inner_middleware_counts_with_its_status(gw: Harness) -> None:
    before = count("POST", "/v1/payments", 401)
    r = await gw.http.post("/v1/payments", json={})
    assert r.status_code == 401
    assert count("POST", "/v1/payments", 401) == before + 1
    sums = REGISTRY.get_sample_value(
        f"{NAME}_sum",
        {"service": "gateway", "method": "POST", "route": "/v1/payments", "status": "401"},
    )
    assert sums is not None
    assert sums > 0
