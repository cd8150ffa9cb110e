"""The request id crosses gRPC: a call made while one is bound carries it in the
``x-request-id`` metadata, the server binds it to the lines of that call (and passes
it on to the calls it makes in turn), and a call without one has none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from paymesh.platform.identity import Caller
from paymesh.platform.logging import bind_request_id, get_logger, reset_request_id
from paymesh.platform.rpc import GrpcServer, caller_options, open_channel
from tests.loglines import captured

log = get_logger("paymesh.tests.rpc")
CALLER = Caller(tenant_id="ten_1", client_id="cli_1")


def _server(name: str, forward_to: str | None = None) -> GrpcServer:
    """A server whose one method logs, and calls `forward_to`'s method first if given."""

    async def handle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        log.info("handled", server=name)
        if forward_to is not None:
            async with open_channel(forward_to) as channel:
                call = channel.unary_unary("/test.Hop/Call")
                await call(b"", **caller_options(CALLER, 10))
        return b""

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=None, response_serializer=None
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Hop", {"Call": handler}),)
        )

    return GrpcServer("127.0.0.1:0", register, ["test.Hop"], service="test")


@pytest.fixture
async def chain() -> AsyncIterator[str]:
    """Two servers, the first calling the second (like payments calling accounts)."""
    last = _server("second")
    second = await last.start()
    first_server = _server("first", forward_to=f"127.0.0.1:{second}")
    first = await first_server.start()
    try:
        yield f"127.0.0.1:{first}"
    finally:
        await first_server.stop(0)
        await last.stop(0)


async def _call(target: str) -> None:
    async with open_channel(target) as channel:
        await channel.unary_unary("/test.Hop/Call")(b"", **caller_options(CALLER, 10))


async def test_a_bound_request_id_reaches_every_server_of_a_chain_of_calls(chain: str) -> None:
    with captured() as lines:
        token = bind_request_id("req-hop-1")
        try:
            await _call(chain)
        finally:
            reset_request_id(token)
        await _call(chain)  # none bound now
    handled = [(x["server"], x.get("request_id")) for x in lines if x["event"] == "handled"]
    assert handled == [
        ("first", "req-hop-1"),
        ("second", "req-hop-1"),
        ("first", None),
        ("second", None),
    ]


def test_the_call_options_carry_the_bound_request_id_only() -> None:
    assert ("x-request-id", "r-1") not in caller_options(CALLER, 1)["metadata"]
    token = bind_request_id("r-1")
    try:
        assert ("x-request-id", "r-1") in caller_options(CALLER, 1)["metadata"]
    finally:
        reset_request_id(token)
