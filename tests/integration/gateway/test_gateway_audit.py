"""The append-only audit log: every security event, no secrets, UPDATE/DELETE refused."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from paymesh.gateway.audit import Origin
from paymesh.gateway.domain import AuditEntry
from paymesh.gateway.keyring import rotate_signing_key
from paymesh.platform.clock import SystemClock


async def _entries(gw: Any) -> list[AuditEntry]:
    return list(reversed(await gw.store.recent_audit(1000)))


async def _raw_rows(gw: Any) -> str:
    """Every audit row, every column, as one text."""
    async with gw.store.db.read() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM audit_log"))).all()
    return "\n".join(repr(tuple(r)) for r in rows)


def _one(entries: list[AuditEntry], action: str, **where: object) -> AuditEntry:
    found = [
        e
        for e in entries
        if e.action == action and all(getattr(e, k) == v for k, v in where.items())
    ]
    assert len(found) == 1, (action, where, entries)
    return found[0]


async def test_every_security_event_is_recorded_with_who_what_when_and_where(gw: Any) -> None:
    before = SystemClock().now_us()
    _, op_id, op_secret = await gw.new_client({"admin"})
    admin = {"Authorization": f"Bearer {await gw.token(op_id, op_secret)}"}
    t = await gw.http.post("/v1/tenants", json={"name": "audited"}, headers=admin)
    tenant = t.json()["id"]
    c = await gw.http.post(
        f"/v1/tenants/{tenant}/clients", json={"scopes": ["payments:read"]}, headers=admin
    )
    client_id, secret = c.json()["client_id"], c.json()["client_secret"]
    token = await gw.token(client_id, secret)
    bad = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "sk_wrong"}
    assert (await gw.http.post("/v1/oauth/token", data=bad)).status_code == 401
    nobody = {**bad, "client_id": "cli_nobody"}
    assert (await gw.http.post("/v1/oauth/token", data=nobody)).status_code == 401
    garbage = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = await gw.http.get("/v1/payments", headers={"Authorization": f"Bearer {garbage}"})
    assert r.status_code == 401
    denied = await gw.http.post(
        "/v1/tenants", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert denied.status_code == 403
    gone = await gw.http.delete(f"/v1/tenants/{tenant}/clients/{client_id}", headers=admin)
    assert gone.status_code == 204
    await rotate_signing_key(
        store=gw.store,
        passphrase=gw.settings.gateway.secret_key.get_secret_value().encode(),
        clock=SystemClock(),
        origin=Origin(actor="cli:alice", source="cli"),
    )

    entries = await _entries(gw)
    assert all(e.at_us >= before for e in entries)
    made = _one(entries, "tenant.created", target=tenant)
    assert (made.actor, made.source, made.outcome) == (op_id, "127.0.0.1", "success")
    assert made.details["name"] == "audited"
    cli = _one(entries, "client.created", target=client_id)
    assert (cli.actor, cli.tenant_id, cli.details) == (op_id, tenant, {"scopes": ["payments:read"]})
    issued = _one(entries, "token.issued", target=client_id)
    assert (issued.actor, issued.tenant_id, issued.source) == (client_id, tenant, "127.0.0.1")
    claims_kid = issued.details["kid"]
    assert claims_kid
    assert issued.details["jti"]
    failed = [e for e in entries if e.action == "auth.failed"]
    reasons = {(e.actor, e.details["reason"]) for e in failed}
    assert (client_id, "bad secret") in reasons
    assert ("cli_nobody", "unknown client") in reasons
    assert all(e.outcome == "failure" and e.source == "127.0.0.1" for e in failed)
    bearer = next(e for e in failed if e.details["credential"] == "bearer_token")
    assert bearer.details["reason"].startswith("invalid token")
    assert bearer.details["kid"] == claims_kid
    assert bearer.details["jti"] == issued.details["jti"]
    no = _one(entries, "access.denied", actor=client_id)
    assert (no.tenant_id, no.target, no.outcome) == (tenant, "POST /v1/tenants", "failure")
    rev = _one(entries, "client.revoked", target=client_id)
    assert (rev.actor, rev.tenant_id, rev.outcome) == (op_id, tenant, "success")
    rot = _one(entries, "key.rotated")
    assert (rot.actor, rot.source) == ("cli:alice", "cli")
    assert rot.details["retired"] == [claims_kid]
    # No secret and no token, whole or in part, in any row.
    raw = await _raw_rows(gw)
    for secret_or_token in (secret, op_secret, "sk_wrong", token, garbage):
        assert secret_or_token not in raw
    for part in token.split(".") + garbage.split("."):
        assert part not in raw


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"]
)
async def test_the_database_refuses_to_change_or_delete_audit_rows(gw: Any, statement: str) -> None:
    await gw.new_client({"payments:read"})  # tenant.created, client.created
    before = await _raw_rows(gw)
    assert before
    with pytest.raises(DBAPIError, match="append-only"):
        async with gw.store.db.transaction() as conn:
            await conn.execute(sa.text(statement))
    assert await _raw_rows(gw) == before
