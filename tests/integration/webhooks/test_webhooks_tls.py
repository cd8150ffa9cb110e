"""The guarded client over real sockets: TLS to the checked address still verifies the
certificate against the URL's host name (SNI), not the address it connected to."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paymesh.certs import make_certs
from paymesh.webhooks.transport import new_client, post
from tests.integration.webhooks.conftest import Receiver

pytestmark = pytest.mark.timeout(60)


async def _to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[tuple[Receiver, ssl.SSLContext]]:
    # The certificate names hooks.merchant.test, localhost and 127.0.0.1.
    issued = make_certs(tmp_path, ["hooks.merchant.test"])
    cert, key = issued.certs["hooks.merchant.test"]
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(issued.ca_file))
    receiver = Receiver()
    await receiver.start(tls=server)
    yield receiver, client
    await receiver.stop()


async def test_https_to_the_checked_address_verifies_the_certificate_for_the_host_name(
    tls_receiver: tuple[Receiver, ssl.SSLContext],
) -> None:
    receiver, trust = tls_receiver
    async with new_client(
        allow_private=True, timeout_s=5, resolver=_to_loopback, ssl_context=trust
    ) as client:
        ok = await post(
            client, f"https://hooks.merchant.test:{receiver.port}/h", b"{}", {},
            timeout_s=5, max_response_bytes=1024,
        )  # fmt: skip
        # Connected to 127.0.0.1, which the certificate also names: only checking
        # the address would pass; checking the host name must not.
        wrong = await post(
            client, f"https://other.merchant.test:{receiver.port}/h", b"{}", {},
            timeout_s=5, max_response_bytes=1024,
        )  # fmt: skip
    assert (ok.status_code, ok.error) == (200, "")
    assert (wrong.status_code, wrong.error) == (0, "connection_error")
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["host"] == f"hooks.merchant.test:{receiver.port}"


async def test_an_untrusted_certificate_is_refused(
    tls_receiver: tuple[Receiver, ssl.SSLContext],
) -> None:
    receiver, _trust = tls_receiver
    async with new_client(allow_private=True, timeout_s=5, resolver=_to_loopback) as client:
        result = await post(
            client, f"https://hooks.merchant.test:{receiver.port}/h", b"{}", {},
            timeout_s=5, max_response_bytes=1024,
        )  # fmt: skip
    assert (result.status_code, result.error) == (0, "connection_error")
    assert receiver.requests == []
