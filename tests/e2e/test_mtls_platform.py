"""The embedded platform with mutual TLS between its services and HTTPS at the gateway,
all certificates from one development CA made by `paymesh certs`."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paymesh.certs import make_certs
from paymesh.cli import bootstrap
from paymesh.launcher import Platform
from paymesh.platform.settings import TlsSettings

from .conftest import Api, Running, embedded_settings


@pytest.fixture
async def secured(tmp_path: Path, ports: dict[str, int]) -> AsyncIterator[tuple[Running, Path]]:
    """Every service over mTLS (one certificate for the whole process), the gateway on HTTPS."""
    certs = tmp_path / "certs"
    make_certs(certs, ["paymesh", "gateway"])
    settings = embedded_settings(tmp_path / "var", ports)
    settings.tls = TlsSettings(
        ca_file=str(certs / "ca.pem"),
        cert_file=str(certs / "paymesh.pem"),
        key_file=str(certs / "paymesh-key.pem"),
    )
    settings.gateway.tls_cert_file = str(certs / "gateway.pem")
    settings.gateway.tls_key_file = str(certs / "gateway-key.pem")
    platform = Platform(settings)
    await platform.start()
    try:
        creds = await bootstrap(platform)
        yield Running(platform, f"https://127.0.0.1:{ports['gateway']}", creds), certs
    finally:
        await platform.stop()


async def _login(url: str, ca: Path, creds: dict[str, str]) -> Api:
    http = httpx.AsyncClient(base_url=url, timeout=30, verify=ssl.create_default_context(cafile=ca))
    r = await http.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        },
    )
    assert r.status_code == 200, r.text
    http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return Api(http)


async def test_a_payment_over_https_crosses_every_service_over_mutual_tls(
    secured: tuple[Running, Path],
) -> None:
    running, certs = secured
    api = await _login(running.url, certs / "ca.pem", running.creds)
    try:
        opened = [
            await api.post("/v1/accounts", {"currency": "USD", "type": kind}, key=str(uuid.uuid4()))
            for kind in ("customer", "merchant")
        ]
        customer, merchant = str(opened[0]["id"]), str(opened[1]["id"])
        topup = await api.post(
            "/v1/topups",
            {"account_id": customer, "amount": 10_000, "currency": "USD"},
            key=str(uuid.uuid4()),
        )
        assert topup["status"] == "succeeded"
        payment = await api.post(
            "/v1/payments",
            {
                "payer_account_id": customer,
                "payee_account_id": merchant,
                "amount": 2_500,
                "currency": "USD",
                "capture_method": "automatic",
            },
            key=str(uuid.uuid4()),
        )
        assert payment["status"] == "succeeded"
        assert payment["risk"]["decision"] == "approve"
        merchant_account = await api.get(f"/v1/accounts/{merchant}")
        assert merchant_account["balance"]["available"] == 2_500
    finally:
        await api.close()


async def test_a_plaintext_grpc_call_to_accounts_is_refused(
    secured: tuple[Running, Path],
) -> None:
    running, _ = secured
    port = running.platform.runtime("accounts").port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
