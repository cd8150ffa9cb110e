"""Tokens, JWT verification, scopes and revocation through the HTTP API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from jwt.algorithms import OKPAlgorithm

from paymesh.gateway.domain import SigningKey
from paymesh.gateway.security import load_private_key

READ = {"payments:read"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _compact(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


async def _key(gw: Any) -> SigningKey:
    keys = await gw.store.signing_keys()
    assert keys, "the signing key is created on first use"
    return keys[0]


def _claims(gw: Any, tenant: str, client_id: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": gw.settings.gateway.issuer,
        "aud": gw.settings.gateway.audience,
        "sub": client_id,
        "tenant": tenant,
        "scope": "payments:read",
        "iat": now,
        "exp": now + 300,
        "jti": "jti_test",
    }
    claims.update(over)
    return claims


async def test_client_with_the_right_secret_gets_a_signed_access_token(gw: Any) -> None:
    tenant, client_id, secret = await gw.new_client({"payments:read", "payments:write"})
    r = await gw.http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == gw.settings.gateway.token_ttl_s
    assert body["scope"] == "payments:read payments:write"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    jwks = (await gw.http.get("/.well-known/jwks.json")).json()["keys"]
    jwk = next(k for k in jwks if k["kid"] == header["kid"])
    claims = jwt.decode(
        body["access_token"],
        OKPAlgorithm.from_jwk(json.dumps(jwk)),
        algorithms=["EdDSA"],
        audience=gw.settings.gateway.audience,
        issuer=gw.settings.gateway.issuer,
    )
    assert claims["sub"] == client_id
    assert claims["tenant"] == tenant
    assert claims["exp"] - claims["iat"] == gw.settings.gateway.token_ttl_s
    assert claims["jti"]


async def test_jwks_serves_public_keys_only_with_kid_alg_and_use(gw: Any) -> None:
    r = await gw.http.get("/.well-known/jwks.json")
    assert r.status_code == 200
    (key,) = r.json()["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "EdDSA"
    assert key["use"] == "sig"
    assert key["kid"]
    assert "d" not in key


async def test_client_credentials_by_http_basic_also_get_a_token(gw: Any) -> None:
    _, client_id, secret = await gw.new_client(READ)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    r = await gw.http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200


@pytest.mark.parametrize("who", ["wrong secret", "unknown client"])
async def test_bad_client_credentials_are_a_401_problem(gw: Any, who: str) -> None:
    _, client_id, _secret = await gw.new_client(READ)
    if who == "unknown client":
        client_id = "cli_nobody"
    r = await gw.http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"},
    )
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "invalid_client"


async def test_a_token_can_ask_for_a_subset_of_the_clients_scopes_but_not_more(gw: Any) -> None:
    _, client_id, secret = await gw.new_client({"payments:read", "payments:write"})
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    ok = await gw.http.post("/v1/oauth/token", data={**form, "scope": "payments:read"})
    assert ok.json()["scope"] == "payments:read"
    wider = await gw.http.post("/v1/oauth/token", data={**form, "scope": "payments:read admin"})
    assert wider.status_code == 400
    assert wider.json()["code"] == "invalid_scope"


async def test_other_grant_types_are_refused(gw: Any) -> None:
    r = await gw.http.post("/v1/oauth/token", data={"grant_type": "password"})
    assert r.status_code == 400
    assert r.json()["code"] == "unsupported_grant_type"


async def test_a_revoked_client_gets_no_token_and_its_tokens_stop_working(gw: Any) -> None:
    admin = await gw.auth({"admin"})
    tenant, client_id, secret = await gw.new_client(READ)
    token = await gw.token(client_id, secret)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await gw.http.get("/v1/payments", headers=bearer)).status_code == 200
    r = await gw.http.delete(f"/v1/tenants/{tenant}/clients/{client_id}", headers=admin)
    assert r.status_code == 204
    after = await gw.http.get("/v1/payments", headers=bearer)
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_token"
    again = await gw.http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert again.status_code == 401


async def test_missing_token_is_a_401_with_www_authenticate_bearer(gw: Any) -> None:
    r = await gw.http.get("/v1/payments")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "unauthenticated"


ATTACKS = [
    "alg none",
    "hs256 keyed with the public key",
    "expired",
    "wrong audience",
    "wrong issuer",
    "tampered signature",
    "unknown kid",
    "not an access token typ",
    "missing exp",
]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_forged_or_invalid_tokens_are_refused_with_401(gw: Any, attack: str) -> None:
    tenant, client_id, secret = await gw.new_client(READ)
    await gw.token(client_id, secret)  # makes sure the signing key exists
    key = await _key(gw)
    private = load_private_key(
        key, passphrase=gw.settings.gateway.secret_key.get_secret_value().encode()
    )
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}
    claims = _claims(gw, tenant, client_id)

    def eddsa(data: bytes) -> bytes:
        return private.sign(data)

    if attack == "alg none":
        token = _compact({**header, "alg": "none"}, claims, lambda _d: b"")
    elif attack == "hs256 keyed with the public key":
        public_bytes = key.public_jwk.encode()
        token = _compact(
            {**header, "alg": "HS256"},
            claims,
            lambda d: hmac.new(public_bytes, d, hashlib.sha256).digest(),
        )
    elif attack == "expired":
        now = int(time.time())
        token = _compact(header, {**claims, "iat": now - 4000, "exp": now - 3000}, eddsa)
    elif attack == "wrong audience":
        token = _compact(header, {**claims, "aud": "someone-else"}, eddsa)
    elif attack == "wrong issuer":
        token = _compact(header, {**claims, "iss": "https://evil.example"}, eddsa)
    elif attack == "tampered signature":
        good = _compact(header, claims, eddsa)
        body = _b64(json.dumps({**claims, "scope": "payments:read admin"}).encode())
        head, _, sig = good.split(".")
        token = f"{head}.{body}.{sig}"
    elif attack == "unknown kid":
        token = _compact({**header, "kid": "kid-that-does-not-exist"}, claims, eddsa)
    elif attack == "not an access token typ":
        token = _compact({**header, "typ": "JWT"}, claims, eddsa)
    else:
        token = _compact(header, {k: v for k, v in claims.items() if k != "exp"}, eddsa)
    # The honest version of the same token is accepted, so the refusal is the attack's doing.
    honest = _compact(header, claims, eddsa)
    ok = await gw.http.get("/v1/payments", headers={"Authorization": f"Bearer {honest}"})
    assert ok.status_code == 200
    r = await gw.http.get("/v1/payments", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "invalid_token"


async def test_a_token_without_the_routes_scope_is_a_403(gw: Any) -> None:
    headers = await gw.auth({"payments:read"})
    r = await gw.http.post(
        "/v1/accounts", json={"currency": "USD", "type": "customer"}, headers=headers
    )
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


async def test_a_tenant_client_cannot_manage_tenants(gw: Any) -> None:
    headers = await gw.auth({"payments:read", "payments:write", "accounts:write"})
    r = await gw.http.post("/v1/tenants", json={"name": "sneaky"}, headers=headers)
    assert r.status_code == 403


async def test_an_operator_creates_a_tenant_and_a_client_that_can_get_tokens(gw: Any) -> None:
    admin = await gw.auth({"admin"})
    r = await gw.http.post(
        "/v1/tenants", json={"name": "acme", "fees": {"fixed": 30, "basis_points": 290}},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201
    tenant = r.json()
    assert tenant["object"] == "tenant"
    assert tenant["fees"] == {"fixed": 30, "basis_points": 290}
    c = await gw.http.post(
        f"/v1/tenants/{tenant['id']}/clients", json={"scopes": ["payments:read"]}, headers=admin
    )
    assert c.status_code == 201
    creds = c.json()
    stored = await gw.store.get_client(creds["client_id"])
    assert stored.secret_hash.startswith("scrypt$")
    assert creds["client_secret"] not in stored.secret_hash
    token = await gw.token(creds["client_id"], creds["client_secret"])
    assert jwt.decode(token, options={"verify_signature": False})["tenant"] == tenant["id"]
    dup = await gw.http.post("/v1/tenants", json={"name": "acme"}, headers=admin)
    assert dup.status_code == 409


async def test_clients_with_unknown_scopes_or_for_unknown_tenants_are_refused(gw: Any) -> None:
    admin = await gw.auth({"admin"})
    bad = await gw.http.post(
        "/v1/tenants/ten_x/clients", json={"scopes": ["payments:everything"]}, headers=admin
    )
    assert bad.status_code == 422
    missing = await gw.http.post(
        "/v1/tenants/ten_nobody/clients", json={"scopes": ["payments:read"]}, headers=admin
    )
    assert missing.status_code == 404
