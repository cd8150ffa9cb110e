"""The guarded network backend refuses non-public addresses after resolution, before
any connection, and response bodies are read only up to the cap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpcore
import pytest

from paymesh.webhooks.transport import AddressRefused, GuardedBackend, read_capped


def _resolver(answer: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return answer

    return resolve


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["fd00:ec2::254"],
        ["93.184.216.34", "10.0.0.1"],  # one bad address is enough to refuse
        ["::ffff:192.168.0.1"],
        ["not-an-ip"],
    ],
)
async def test_a_host_resolving_to_any_non_public_address_is_refused(answer: list[str]) -> None:
    backend = GuardedBackend(allow_private=False, resolver=_resolver(answer))
    with pytest.raises(AddressRefused):
        await backend.connect_tcp("merchant.example", 443, timeout=1)


async def test_resolution_failures_are_connection_errors() -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    backend = GuardedBackend(allow_private=False, resolver=broken)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("merchant.example", 443, timeout=1)
    with pytest.raises(httpcore.ConnectError):
        await GuardedBackend(allow_private=False, resolver=_resolver([])).connect_tcp(
            "merchant.example", 443, timeout=1
        )


async def test_unix_sockets_are_never_used() -> None:
    with pytest.raises(AddressRefused):
        await GuardedBackend(allow_private=True).connect_unix_socket("/var/run/docker.sock")


async def test_reading_stops_at_the_cap() -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    assert await read_capped(endless(), 10_500) == 10_500
    assert pulled == 11
    pulled = 0
    assert await read_capped(endless(), 0) == 0
    assert pulled == 0


async def test_a_short_body_is_read_whole() -> None:
    async def short() -> AsyncIterator[bytes]:
        yield b"ok"

    assert await read_capped(short(), 65536) == 2
