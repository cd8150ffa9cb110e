"""`paymesh up` as a user runs it: a process that serves, stops cleanly on Ctrl-C,
and reuses var/ on the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def _start(var: Path, ports: dict[str, int]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PAYMESH_VAR_DIR": str(var),
        "PAYMESH_ACCOUNTS__LISTEN": f"127.0.0.1:{ports['accounts']}",
        "PAYMESH_RISK__LISTEN": f"127.0.0.1:{ports['risk']}",
        "PAYMESH_PAYMENTS__LISTEN": f"127.0.0.1:{ports['payments']}",
        "PAYMESH_WEBHOOKS__LISTEN": f"127.0.0.1:{ports['webhooks']}",
        "PAYMESH_GATEWAY__PORT": str(ports["gateway"]),
    }
    for name in ("accounts", "payments", "risk", "webhooks", "gateway"):  # one shared listener
        env[f"PAYMESH_{name.upper()}__ADMIN_LISTEN"] = f"127.0.0.1:{ports['admin']}"
    exe = Path(sys.executable).parent / "paymesh"
    return subprocess.Popen(
        [str(exe), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_ready(
    url: str, proc: subprocess.Popen[str], creds_file: Path, timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"paymesh up exited early:\n{proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            jwks = httpx.get(f"{url}/.well-known/jwks.json", timeout=1)
            if jwks.status_code == 200 and creds_file.exists():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("paymesh up did not serve in time")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def _token(url: str, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=10,
    )


def test_paymesh_up_serves_stops_on_ctrl_c_and_reuses_var(tmp_path: Path) -> None:
    var = tmp_path / "var"
    names = ("accounts", "payments", "risk", "webhooks", "gateway", "admin")
    ports = {name: free_port() for name in names}
    url = f"http://127.0.0.1:{ports['gateway']}"
    admin = f"http://127.0.0.1:{ports['admin']}"

    proc = _start(var, ports)
    try:
        creds_file = var / "demo-credentials.json"
        _wait_ready(url, proc, creds_file)
        creds = json.loads(creds_file.read_text())
        assert set(creds) == {
            "client_id", "client_secret", "operator_client_id", "operator_client_secret",
            "console_email", "console_password",
        }  # fmt: skip
        assert creds_file.stat().st_mode & 0o777 == 0o600
        assert _token(url, creds["client_id"], creds["client_secret"]).status_code == 200
        assert httpx.get(f"{url}/openapi.json", timeout=5).json()["openapi"].startswith("3.1")
        assert httpx.get(f"{url}/docs", timeout=5).status_code == 200
        for name in ("accounts", "payments", "risk"):
            assert (var / f"{name}.db").exists()
        assert httpx.get(f"{admin}/healthz", timeout=5).status_code == 200
        ready = httpx.get(f"{admin}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["services"]) == set(names[:-1])
        scrape = httpx.get(f"{admin}/metrics", timeout=5).text
        for name in names[:-1]:
            assert f'paymesh_ready{{service="{name}"}} 1.0' in scrape
    finally:
        out = _stop(proc)
    assert creds["client_id"] in out  # told to the newcomer, with where its secret is
    assert str(creds_file) in out
    assert creds["client_secret"] not in out  # stdout and stderr may end up in a log
    assert creds["operator_client_secret"] not in out
    assert creds["console_password"] not in out
    assert f"{url}/console" in out  # the console's address, and who signs in there
    assert creds["console_email"] in out
    assert f"{admin}/metrics" in out  # and where the metrics are

    proc = _start(var, ports)
    try:
        _wait_ready(url, proc, var / "demo-credentials.json")
        assert json.loads((var / "demo-credentials.json").read_text()) == creds
        assert _token(url, creds["client_id"], creds["client_secret"]).status_code == 200
    finally:
        _stop(proc)
