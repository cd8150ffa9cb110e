"""Mutual TLS on a real GrpcServer: certificates made by `paymesh certs`, the health
service answering only clients that present a certificate signed by the same CA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from paymesh.certs import make_certs
from paymesh.platform.rpc import GrpcServer, channel_credentials, open_channel
from paymesh.platform.settings import TlsSettings


def _tls(directory: Path, service: str) -> TlsSettings:
    return TlsSettings(
        ca_file=str(directory / "ca.pem"),
        cert_file=str(directory / f"{service}.pem"),
        key_file=str(directory / f"{service}-key.pem"),
    )


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    make_certs(directory, ["accounts", "payments"])
    return directory


@pytest.fixture
async def server(certs: Path) -> AsyncIterator[str]:
    grpc_server = GrpcServer(
        "127.0.0.1:0", lambda s: None, [], tls=_tls(certs, "accounts"), service="accounts"
    )
    port = await grpc_server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await grpc_server.stop(0)


async def _check(channel: grpc.aio.Channel) -> int:
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    return int(reply.status)


async def test_a_client_with_a_certificate_from_the_ca_is_served(server: str, certs: Path) -> None:
    status = await _check(open_channel(server, _tls(certs, "payments")))
    assert status == health_pb2.HealthCheckResponse.SERVING


async def test_a_client_without_a_certificate_is_refused(server: str, certs: Path) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=(certs / "ca.pem").read_bytes())
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _check(grpc.aio.secure_channel(server, credentials))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_with_a_certificate_from_another_ca_is_refused(
    server: str, certs: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    make_certs(other, ["payments"])
    # It trusts our CA (so it would accept the server), but presents a foreign certificate.
    foreign = _tls(other, "payments").model_copy(update={"ca_file": str(certs / "ca.pem")})
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _check(grpc.aio.secure_channel(server, channel_credentials(foreign)))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_is_refused(server: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _check(open_channel(server))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
