"""A servicer method's ServiceError reaches the caller as its status and stable code,
through the server itself: servicer methods hold no try/except of their own."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from paymesh.platform.errors import ServiceError
from paymesh.platform.rpc import GrpcServer, error_code


class _Taken(ServiceError):
    code = "thing_exists"
    status = "ALREADY_EXISTS"


class _Refused(ServiceError):
    code = "thing_refused"
    status = "FAILED_PRECONDITION"

    def grpc_status(self) -> Any:
        return "INVALID_ARGUMENT" if "invalid" in str(self) else self.status


async def _method(request: bytes, context: Any) -> bytes:
    if request == b"taken":
        raise _Taken("the id is taken")
    if request == b"invalid":
        raise _Refused("invalid thing")
    if request == b"bug":
        raise KeyError("a bug")
    return b"ok:" + request


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_method)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Things", {"Do": handler}),)
    )


@pytest.fixture
async def call() -> Any:
    server = GrpcServer("127.0.0.1:0", _register, ["test.Things"], service="test")
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel.unary_unary("/test.Things/Do")
    await channel.close()
    await server.stop(grace_s=0)


async def test_a_service_error_becomes_its_status_and_code(call: Any) -> None:
    assert await call(b"x") == b"ok:x"
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await call(b"taken")
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_code(taken.value) == "thing_exists"
    assert taken.value.details() == "the id is taken"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"invalid")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(refused.value) == "thing_refused"


async def test_a_bug_stays_unknown_without_a_code(call: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bug:
        await call(b"bug")
    assert bug.value.code() == grpc.StatusCode.UNKNOWN
    assert error_code(bug.value) is None
