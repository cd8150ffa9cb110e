"""gRPC calls timed on both sides, by method and status code, over a real server and channel."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import DBAPIError

from paymesh.platform.rpc import GrpcServer, abort, open_channel
from tests.conftest import free_port

SERVER = "paymesh_grpc_server_handled_seconds"
CLIENT = "paymesh_grpc_client_handled_seconds"


def count(name: str, service: str, method: str, code: str) -> float:
    labels = {"service": service, "grpc_method": method, "grpc_code": code}
    return REGISTRY.get_sample_value(f"{name}_count", labels) or 0.0


def seconds(name: str, service: str, method: str, code: str) -> float:
    labels = {"service": service, "grpc_method": method, "grpc_code": code}
    return REGISTRY.get_sample_value(f"{name}_sum", labels) or 0.0


async def _ok(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    await asyncio.sleep(0.05)
    return request


async def _not_found(_request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    await abort(context, grpc.StatusCode.NOT_FOUND, "not_found", "no such thing")


async def _bug(_request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    raise RuntimeError("a bug")


async def _database_down(
    _request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]
) -> bytes:
    raise DBAPIError("SELECT 1", {}, ConnectionRefusedError(), connection_invalidated=True)


async def _slow(_request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    await asyncio.sleep(5)
    return b""


def _register(server: grpc.aio.Server) -> None:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(fn)
        for name, fn in {
            "Ok": _ok, "NotFound": _not_found, "Bug": _bug, "Down": _database_down, "Slow": _slow,
        }.items()
    }  # fmt: skip
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, str, grpc.aio.Channel]]:
    """A server and a channel, each under a service name no other test uses."""
    server_name, client_name = f"srv{secrets.token_hex(3)}", f"cli{secrets.token_hex(3)}"
    server = GrpcServer(f"127.0.0.1:{free_port()}", _register, ["test.Echo"], service=server_name)
    port = await server.start()
    channel = open_channel(f"127.0.0.1:{port}", service=client_name)
    try:
        yield server_name, client_name, channel
    finally:
        await channel.close()
        await server.stop(0)


async def test_a_call_is_timed_by_the_server_and_the_caller_under_its_method_and_code(
    served: tuple[str, str, grpc.aio.Channel],
) -> None:
    server, client, channel = served
    method = "/test.Echo/Ok"
    assert await channel.unary_unary(method)(b"hi", timeout=5) == b"hi"
    assert count(SERVER, server, method, "OK") == 1
    assert count(CLIENT, client, method, "OK") == 1
    assert 0.05 <= seconds(SERVER, server, method, "OK") <= seconds(CLIENT, client, method, "OK")


@pytest.mark.parametrize(
    ("name", "code", "attempts"),
    # UNAVAILABLE is retried by the channel (4 attempts in all): the server times each
    # attempt, the caller the call as a whole.
    [("NotFound", "NOT_FOUND", 1), ("Bug", "UNKNOWN", 1), ("Down", "UNAVAILABLE", 4)],
)
async def test_a_failed_call_is_timed_under_the_code_the_caller_got(
    served: tuple[str, str, grpc.aio.Channel], name: str, code: str, attempts: int
) -> None:
    server, client, channel = served
    method = f"/test.Echo/{name}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(method)(b"", timeout=5)
    assert caught.value.code().name == code
    assert count(SERVER, server, method, code) == attempts
    assert count(SERVER, server, method, "OK") == 0
    assert count(CLIENT, client, method, code) == 1


async def test_a_call_past_its_deadline_is_timed_as_exceeded_by_the_caller_cancelled_by_the_server(
    served: tuple[str, str, grpc.aio.Channel],
) -> None:
    server, client, channel = served
    method = "/test.Echo/Slow"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(method)(b"", timeout=0.2)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert count(CLIENT, client, method, "DEADLINE_EXCEEDED") == 1
    for _ in range(50):  # the server learns of it when the deadline cancels its handler
        if count(SERVER, server, method, "CANCELLED"):
            break
        await asyncio.sleep(0.05)
    assert count(SERVER, server, method, "CANCELLED") == 1


async def test_a_method_the_server_does_not_have_is_not_a_label_of_its_metrics(
    served: tuple[str, str, grpc.aio.Channel],
) -> None:
    server, _, channel = served
    made_up = f"/test.Echo/Made{secrets.token_hex(4)}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(made_up)(b"", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    methods = {
        s.labels.get("grpc_method")
        for family in REGISTRY.collect()
        if family.name == SERVER
        for s in family.samples
        if s.labels.get("service") == server
    }
    assert made_up not in methods


def _client_calls(method: str) -> float:
    """Client-side calls of `method` timed under any service name."""
    return sum(
        s.value
        for family in REGISTRY.collect()
        if family.name == CLIENT
        for s in family.samples
        if s.name == f"{CLIENT}_count" and s.labels.get("grpc_method") == method
    )


async def test_a_channel_opened_without_a_service_name_times_nothing() -> None:
    server_name = f"srv{secrets.token_hex(3)}"
    server = GrpcServer(f"127.0.0.1:{free_port()}", _register, ["test.Echo"], service=server_name)
    port = await server.start()
    before = _client_calls("/test.Echo/Ok")
    try:
        async with open_channel(f"127.0.0.1:{port}") as channel:
            await channel.unary_unary("/test.Echo/Ok")(b"", timeout=5)
        assert count(SERVER, server_name, "/test.Echo/Ok", "OK") == 1
        assert _client_calls("/test.Echo/Ok") == before
    finally:
        await server.stop(0)
