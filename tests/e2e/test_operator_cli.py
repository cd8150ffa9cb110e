"""The operator commands as a user runs them: tenants, clients, keys and the audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from paymesh.gateway.api import create_app
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.payments import FakePayments


def _paymesh(env: dict[str, str], *args: str, ok: bool = True) -> str:
    exe = Path(sys.executable).parent / "paymesh"
    done = subprocess.run(
        [str(exe), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode == 0) == ok, (args, done.returncode, done.stdout, done.stderr)
    return done.stdout


@asynccontextmanager
async def _gateway(db_url: str, var: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a gateway app over the database the commands wrote."""
    db = Database(db_url)
    settings = Settings(var_dir=var, gateway=GatewaySettings(database_url=db_url))
    app = create_app(
        settings=settings,
        store=SqlGatewayStore(db),
        accounts=FakeAccounts(),
        payments=FakePayments(),
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
            yield http
    finally:
        app.state.gateway.hasher.close()
        app.state.console_hasher.close()
        await db.dispose()


async def _token_status(db_url: str, var: Path, client_id: str, secret: str) -> int:
    async with _gateway(db_url, var) as http:
        r = await http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
    return r.status_code


async def test_operator_creates_a_tenant_and_clients_revokes_one_and_audits_it(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    env = {
        **os.environ,
        "PAYMESH_VAR_DIR": str(tmp_path),
        "PAYMESH_GATEWAY__DATABASE_URL": db_url,
    }
    tenant = json.loads(_paymesh(env, "tenants", "create", "acme"))
    assert tenant["name"] == "acme"
    _paymesh(env, "tenants", "create", "acme", ok=False)  # the name is taken
    kept = json.loads(
        _paymesh(
            env, "clients", "create", tenant["id"], "--scope", "payments:read",
            "--scope", "payments:write",
        )
    )  # fmt: skip
    assert kept["scopes"] == ["payments:read", "payments:write"]
    assert kept["client_secret"].startswith("sk_")
    gone = json.loads(_paymesh(env, "clients", "create", tenant["id"], "--scope", "accounts:read"))
    _paymesh(env, "clients", "create", "ten_nobody", "--scope", "payments:read", ok=False)
    _paymesh(env, "clients", "revoke", tenant["id"], gone["client_id"])
    _paymesh(env, "clients", "revoke", tenant["id"], "cli_nobody", ok=False)

    assert await _token_status(db_url, tmp_path, kept["client_id"], kept["client_secret"]) == 200
    assert await _token_status(db_url, tmp_path, gone["client_id"], gone["client_secret"]) == 401

    first = _paymesh(env, "keys", "rotate").split()[1]
    second = _paymesh(env, "keys", "rotate").split()[1]
    listed = _paymesh(env, "keys", "list").splitlines()
    states = [line.split()[:2] for line in listed]  # newest first; the app made the oldest
    assert states[:2] == [[second, "active"], [first, "retired"]]
    assert [status for _, status in states].count("active") == 1

    tail = _paymesh(env, "audit", "tail", "--limit", "50")
    lines = tail.splitlines()
    assert any("tenant.created" in line and tenant["id"] in line for line in lines)
    assert any("client.created" in line and kept["client_id"] in line for line in lines)
    assert any("client.revoked" in line and gone["client_id"] in line for line in lines)
    assert sum("key.rotated" in line for line in lines) == 2
    operator_lines = [line for line in lines if "source=cli" in line]
    assert operator_lines
    assert all("actor=cli:" in line for line in operator_lines)
    assert any("token.issued" in line and "source=127.0.0.1" in line for line in lines)
    assert any("auth.failed" in line and gone["client_id"] in line for line in lines)
    for secret in (kept["client_secret"], gone["client_secret"]):
        assert secret not in tail
    assert len(_paymesh(env, "audit", "tail", "--limit", "2").splitlines()) == 2


async def _console_sign_in(db_url: str, var: Path, email: str, password: str) -> int:
    """The status of a console sign-in (303: signed in) on a gateway over `db_url`."""
    async with _gateway(db_url, var) as http:
        page = (await http.get("/console/login")).text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        r = await http.post(
            "/console/login", data={"email": email, "password": password, "csrf": csrf}
        )
    return r.status_code


async def test_operator_manages_console_users(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    env = {**os.environ, "PAYMESH_VAR_DIR": str(tmp_path), "PAYMESH_GATEWAY__DATABASE_URL": db_url}
    tenant = json.loads(_paymesh(env, "tenants", "create", "acme"))
    made = json.loads(
        _paymesh(env, "users", "create", "Agent@Example.com", "--role", "support",
                 "--tenant", tenant["id"])
    )  # fmt: skip
    assert (made["email"], made["role"], made["tenant_id"]) == (
        "agent@example.com",
        "support",
        tenant["id"],
    )
    _paymesh(env, "users", "create", "agent@example.com", "--role", "viewer", ok=False)  # taken
    _paymesh(
        env, "users", "create", "x@example.com", "--role", "viewer", "--tenant", "ten_no", ok=False
    )
    platform_user = json.loads(
        _paymesh(env, "users", "create", "ops@example.com", "--role", "admin")
    )
    assert platform_user["tenant_id"] is None

    listed = [json.loads(line) for line in _paymesh(env, "users", "list").splitlines()]
    assert [(u["email"], u["must_change_password"], u["disabled"]) for u in listed] == [
        ("agent@example.com", True, False),
        ("ops@example.com", True, False),
    ]
    one_time = made["one_time_password"]
    assert await _console_sign_in(db_url, tmp_path, "agent@example.com", one_time) == 303

    _paymesh(env, "users", "disable", "agent@example.com")
    assert await _console_sign_in(db_url, tmp_path, "agent@example.com", one_time) == 401
    _paymesh(env, "users", "enable", "agent@example.com")
    reset = json.loads(_paymesh(env, "users", "reset-password", "agent@example.com"))
    assert await _console_sign_in(db_url, tmp_path, "agent@example.com", one_time) == 401
    assert (
        await _console_sign_in(db_url, tmp_path, "agent@example.com", reset["one_time_password"])
        == 303
    )
    _paymesh(env, "users", "disable", "nobody@example.com", ok=False)
    assert "removed" in _paymesh(env, "users", "reset-totp", "agent@example.com")

    audit = _paymesh(env, "audit", "tail", "--limit", "50")
    for action in (
        "console.user_created",
        "console.user_disabled",
        "console.password_reset",
        "console.totp_reset",
    ):
        assert action in audit
    assert one_time not in audit
    assert reset["one_time_password"] not in audit
