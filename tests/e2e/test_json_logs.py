"""What the processes write, as an operator's log collector gets it: `paymesh up` and
`paymesh serve <service>` run as real processes; every line of stderr is one JSON
object (uvicorn's, grpc's, alembic's and paymesh's alike), stdout holds only the
banner of `paymesh up` (client ids, never a secret), and a request's id reaches the
services' lines."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

PAYMESH = Path(sys.executable).parent / "paymesh"
SERVICES = ("accounts", "payments", "risk", "webhooks", "gateway")

# Everything `paymesh up` prints on stdout, line by line (no colour when not a terminal).
BANNER = [
    r"paymesh is up: http://127\.0\.0\.1:\d+  \(API docs: \S+/docs, \S+/redoc\)",
    r"  accounts  gRPC 127\.0\.0\.1:\d+",
    r"  risk      gRPC 127\.0\.0\.1:\d+",
    r"  payments  gRPC 127\.0\.0\.1:\d+",
    r"  webhooks  gRPC 127\.0\.0\.1:\d+",
    r"  admin     http://127\.0\.0\.1:\d+/metrics \(/healthz, /readyz\)"
    r" of accounts, risk, payments, webhooks, gateway",
    r"  demo client:     cli_\w+",
    r"  operator client: cli_\w+",
    r"  their secrets: \S+demo-credentials\.json \(try `paymesh demo`\)",
    r"  console: http://127\.0\.0\.1:\d+/console  \(sign in as admin@paymesh\.localhost; the"
    r" password is console_password in that file\)",
    r"Ctrl-C stops it\. Logs: stderr, one JSON object per line\.",
]


def _env(var: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {
        **os.environ,
        "PAYMESH_VAR_DIR": str(var),
        "PAYMESH_LOG_LEVEL": "INFO",
        "PAYMESH_GATEWAY__PORT": str(ports["gateway"]),
        "PAYMESH_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
    }
    for name in SERVICES[:-1]:
        env[f"PAYMESH_{name.upper()}__LISTEN"] = f"127.0.0.1:{ports[name]}"
        env[f"PAYMESH_{name.upper()}__TARGET"] = f"127.0.0.1:{ports[name]}"
    env.pop("GRPC_VERBOSITY", None)  # the default, as a user gets it
    return env


def _wait(url: str, proc: subprocess.Popen[bytes], ready: Path | None = None) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/.well-known/jwks.json", timeout=1).status_code == 200 and (
                ready is None or ready.exists()
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("not serving in time")


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 0


def _json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of `path`, each of which must be one JSON object with the usual fields."""
    parsed = []
    for line in path.read_text().splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name}: not JSON: {line!r}") from None
        assert isinstance(value, dict), line
        assert {"timestamp", "level", "logger", "event"} <= value.keys(), line
        parsed.append(value)
    return parsed


def _access(lines: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    [line] = [
        x for x in lines if x["event"] == "http_request" and x.get("request_id") == request_id
    ]
    return line


def test_paymesh_up_writes_only_json_lines_on_stderr_and_only_its_banner_on_stdout(
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    ports = {name: free_port() for name in SERVICES}
    url = f"http://127.0.0.1:{ports['gateway']}"
    # *.log under the session's folder: the suite's secret check reads them too.
    stdout, stderr = tmp_path / "up.stdout.log", tmp_path / "up.stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen([str(PAYMESH), "up"], env=_env(var, ports), stdout=out, stderr=err)
        try:
            _wait(url, proc, var / "demo-credentials.json")
            creds = json.loads((var / "demo-credentials.json").read_text())
            ids = _drive(url, creds)
        finally:
            _stop(proc, signal.SIGINT)

    banner = stdout.read_text().splitlines()
    assert len(banner) == len(BANNER), banner
    for line, pattern in zip(banner, BANNER, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert creds["client_id"] in banner[6]
    lines = _json_lines(stderr)
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "paymesh.launcher", "paymesh.gateway.access"} <= loggers
    assert not [line for line in lines if "setup plugin" in line["event"]]  # alembic, quiet

    pay = _access(lines, ids["payment"])
    assert (pay["method"], pay["route"], pay["status"]) == ("POST", "/v1/payments", 201)
    assert pay["client_id"] == creds["client_id"]
    assert isinstance(pay["duration_ms"], float)
    bad = _access(lines, ids["bad"])
    assert (bad["route"], bad["status"]) == ("/v1/payments", 400)
    missing = _access(lines, ids["missing"])
    assert (missing["route"], missing["status"]) == (None, 404)
    # The request id went with the gRPC calls: the services' own lines carry it.
    hook = [x for x in lines if x["event"] == "webhook_endpoint_created"]
    assert [x.get("request_id") for x in hook] == [ids["hook"]]
    entry = [x for x in lines if x["event"] == "risk_list_entry_added"]
    assert [x.get("request_id") for x in entry] == [ids["risk"]]

    everything = stdout.read_text() + stderr.read_text()
    for secret in (creds["client_secret"], creds["operator_client_secret"], *ids["secrets"]):
        assert secret not in everything


def _drive(url: str, creds: dict[str, str]) -> dict[str, Any]:
    """A payment, a webhook endpoint, a risk list entry, a bad request and a 404, each with
    a request id of ours; the ids and the secrets the answers held."""
    ids: dict[str, Any] = {
        key: f"e2e-{key}-{uuid.uuid4().hex[:8]}"
        for key in ("payment", "bad", "missing", "hook", "risk")
    }
    with httpx.Client(base_url=url, timeout=30) as http:
        token = http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"

        def post(path: str, body: dict[str, Any], request_id: str | None = None) -> Any:
            headers = {"Idempotency-Key": str(uuid.uuid4())}
            if request_id:
                headers["X-Request-Id"] = request_id
            r = http.post(path, json=body, headers=headers)
            assert r.status_code == 201, r.text
            if request_id:
                assert r.headers["x-request-id"] == request_id
            return r.json()

        payer = post("/v1/accounts", {"currency": "USD", "type": "customer"})
        payee = post("/v1/accounts", {"currency": "USD", "type": "merchant"})
        post("/v1/topups", {"account_id": payer["id"], "amount": 5_000, "currency": "USD"})
        payment = post(
            "/v1/payments",
            {
                "payer_account_id": payer["id"],
                "payee_account_id": payee["id"],
                "amount": 1_000,
                "currency": "USD",
                "capture_method": "automatic",
            },
            ids["payment"],
        )
        assert payment["status"] == "succeeded", payment
        endpoint = post(
            "/v1/webhook_endpoints",
            {"url": "http://127.0.0.1:9/hook", "events": ["*"]},
            ids["hook"],
        )
        post("/v1/risk/lists/blocked_accounts/entries", {"value": "acct_nobody"}, ids["risk"])
        bad = http.post(
            "/v1/payments",
            content=b"{not json",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4()),
                "X-Request-Id": ids["bad"],
            },
        )
        assert bad.status_code == 400, bad.text
        assert bad.headers["x-request-id"] == ids["bad"]
        missing = http.get("/v1/nowhere", headers={"X-Request-Id": ids["missing"]})
        assert (missing.status_code, missing.headers["x-request-id"]) == (404, ids["missing"])
    ids["secrets"] = [token, endpoint["secret"]]
    return ids


def test_paymesh_serve_writes_only_json_lines(tmp_path: Path) -> None:
    """Two services of the distributed shape as their own processes (SQLite, no Kafka)."""
    ports = {name: free_port() for name in SERVICES}
    env = _env(tmp_path / "var", ports)
    url = f"http://127.0.0.1:{ports['gateway']}"
    logs: dict[str, Path] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("accounts", "gateway"):
            logs[name] = tmp_path / f"serve-{name}.log"
            with logs[name].open("wb") as log:
                procs[name] = subprocess.Popen(
                    [str(PAYMESH), "serve", name], env=env, stdout=log, stderr=subprocess.STDOUT
                )
        _wait(url, procs["gateway"])
        r = httpx.get(f"{url}/v1/accounts/acct_1", headers={"X-Request-Id": "serve-1"}, timeout=10)
        assert (r.status_code, r.headers["x-request-id"]) == (401, "serve-1")
        bad = httpx.post(f"{url}/v1/oauth/token", data={"grant_type": "password"}, timeout=10)
        assert bad.status_code == 400
    finally:
        for name in reversed(list(procs)):
            _stop(procs[name], signal.SIGTERM)
    gateway = _json_lines(logs["gateway"])
    accounts = _json_lines(logs["accounts"])
    assert _access(gateway, "serve-1")["route"] == "/v1/accounts/{account_id}"
    assert any(x["logger"] == "uvicorn.error" for x in gateway)
    assert any(x["event"] == "service_started" for x in accounts)
