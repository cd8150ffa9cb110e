"""What each layer under a payment costs, in CPU, on this machine: the floors.

A payment goes through an HTTP request, a handful of gRPC calls and a few dozen SQL
statements in about a dozen durable transactions. This measures one of each, in one
process on the event loop the platform uses (uvloop), so the end-to-end figure of
bench/e2e.py can be read as counts times unit costs:

- SQLite, the reference: plain sqlite3 on the same file settings (WAL,
  synchronous=FULL): a point read, and a durable write transaction;
- the same through the platform's Database (platform/db.py: SQLAlchemy Core on the
  event loop's thread), with a statement built per call as most store code still
  does, and built once (platform/statements.py); an empty read transaction and a
  one-update write transaction;
- the same through SQLAlchemy's aiosqlite engine (a thread hand-off per statement:
  what the platform used before);
- a gRPC call (the standard health Check, client and server in this process);
- an HTTP request through uvicorn and a bare Starlette route (no paymesh middleware).

Each line: CPU µs per operation (process time: every thread), and operations per
second of wall time in a closed loop of one caller. Nothing asserts on speed.

    python bench/layers.py [--n 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import sqlalchemy as sa
import uvicorn
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from paymesh.platform.db import Database

md = sa.MetaData()
items = sa.Table(
    "items",
    md,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("status", sa.String),
    *(sa.Column(f"c{i}", sa.BigInteger) for i in range(20)),
)
PREBUILT_SELECT = sa.select(items).where(items.c.id == sa.bindparam("w_id"))
PREBUILT_UPDATE = items.update().where(items.c.id == sa.bindparam("w_id"))
ROWS = 1000
VALUES = {f"c{i}": i for i in range(20)}

results: list[dict[str, Any]] = []


async def measure(name: str, n: int, op: Callable[[int], Awaitable[Any]]) -> None:
    for i in range(min(n, 200)):  # warm caches and pools
        await op(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        await op(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    us = 1e6 * cpu / n
    results.append({"layer": name, "cpu_us": round(us, 1), "per_s": round(n / wall)})
    print(f"  {name:62} {us:8.1f} µs CPU  {n / wall:8.0f}/s")


def _key(i: int) -> str:
    return f"k{i % ROWS}"


async def sqlite_layers(n: int, folder: Path) -> None:
    path = folder / "layers.db"
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute(
        "CREATE TABLE items (id TEXT PRIMARY KEY, status TEXT, "
        + ", ".join(f"c{i} BIGINT" for i in range(20))
        + ")"
    )
    raw.executemany(
        "INSERT INTO items (id, status) VALUES (?, ?)", [(f"k{i}", "s") for i in range(ROWS)]
    )
    print("SQLite (WAL, synchronous=FULL):")

    async def raw_read(i: int) -> None:
        raw.execute("BEGIN")
        raw.execute("SELECT * FROM items WHERE id = ?", (_key(i),)).fetchone()
        raw.execute("COMMIT")

    async def raw_write(i: int) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE items SET c0 = ? WHERE id = ?", (i, _key(i)))
        raw.execute("COMMIT")

    await measure("sqlite3: read transaction, one point read (reference)", n, raw_read)
    await measure("sqlite3: durable write transaction, one update (reference)", n, raw_write)
    raw.close()

    db = Database(f"sqlite+aiosqlite:///{path}", service="layers")

    async def empty_read(i: int) -> None:
        async with db.read():
            pass

    async def read_built(i: int) -> None:
        async with db.read() as conn:
            (await conn.execute(sa.select(items).where(items.c.id == _key(i)))).first()

    async def read_prebuilt(i: int) -> None:
        async with db.read() as conn:
            (await conn.execute(PREBUILT_SELECT, {"w_id": _key(i)})).first()

    async def write_built(i: int) -> None:
        async with db.transaction() as conn:
            await conn.execute(items.update().where(items.c.id == _key(i)).values(VALUES))

    async def write_prebuilt(i: int) -> None:
        async with db.transaction() as conn:
            await conn.execute(PREBUILT_UPDATE, {"w_id": _key(i), **VALUES})

    async def statement_built(conn: Any, i: int) -> None:
        (await conn.execute(sa.select(items).where(items.c.id == _key(i)))).first()

    async def statement_prebuilt(conn: Any, i: int) -> None:
        (await conn.execute(PREBUILT_SELECT, {"w_id": _key(i)})).first()

    await measure("Database.read(): empty read transaction", n, empty_read)
    await measure("Database.read(): one read, statement built per call", n, read_built)
    await measure("Database.read(): one read, statement built once", n, read_prebuilt)
    await measure("Database.transaction(): 21-column update, built per call", n, write_built)
    await measure("Database.transaction(): 21-column update, built once", n, write_prebuilt)
    async with db.read() as conn:
        await measure(
            "a statement inside a transaction, built per call",
            n,
            lambda i: statement_built(conn, i),
        )
        await measure(
            "a statement inside a transaction, built once",
            n,
            lambda i: statement_prebuilt(conn, i),
        )
    async with db.engine.connect() as conn:  # aiosqlite: a thread hand-off per statement
        await measure(
            "aiosqlite engine (thread hand-off): a statement, built once",
            n,
            lambda i: statement_prebuilt(conn, i),
        )
    await db.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def grpc_layer(n: int) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()
    print("gRPC (grpc.aio, client and server in this process):")

    async def call(i: int) -> None:
        await stub.Check(request)

    try:
        await measure("a unary call (health Check), both sides", n, call)
    finally:
        await channel.close()
        await server.stop(None)


async def http_layer(n: int) -> None:
    async def ok(request: Any) -> Response:
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route("/", ok, methods=["POST"])])
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's Server offers no event to wait on
        await asyncio.sleep(0.01)
    print("HTTP (uvicorn + httptools, a bare Starlette route, client in this process):")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

        async def post(i: int) -> None:
            (await client.post("/", content=b"{}")).raise_for_status()

        try:
            await measure("a POST, client (httpx) and server together", n, post)
        finally:
            server.should_exit = True
            await task


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        await sqlite_layers(n, Path(folder))
    await grpc_layer(n)
    await http_layer(n)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="operations per line")
    uvloop.run(main(parser.parse_args().n))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(json.dumps({"commit": commit, "layers": results}))
