"""Risk through the gateway of the embedded platform: velocity, hot reload, reviews, lists.

Each test starts its own embedded platform with a rules file in its
temporary directory, and changes that file while the platform runs.
Everything asynchronous (a reload, a review resolution reaching payments) is
awaited by polling the API, bounded by a number of attempts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from paymesh.accounts.audit import verify
from paymesh.cli import bootstrap
from paymesh.launcher import Platform
from paymesh.platform.db import Database
from paymesh.settings import Settings

from .conftest import Api, Running

T = TypeVar("T")

VELOCITY_RULES = """\
version: velocity-1
rules:
  - id: payer-burst
    kind: velocity
    dimension: payer
    window_s: 60
    max_count: {max_count}
    action: decline
    reason: velocity_payer_count
    description: at most {max_count} payments per payer per minute
"""

REVIEW_RULES = """\
version: review-1
rules:
  - id: large-needs-review
    kind: amount_limit
    max_amount: {USD: 5000}
    action: review
    reason: amount_needs_review
  - id: blocked-payer
    kind: list
    field: payer_account_id
    list: blocked_accounts
    action: decline
    reason: blocked_payer
"""


# The payer's balance once the approved 6 000 has moved and nothing is held.
SETTLED = {"available": 14_000, "pending": 0, "posted": 14_000}


def write_rules(path: Path, content: str) -> str:
    """Replace the rules file at once (as a ConfigMap update does); its sha256."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(content)
    os.replace(tmp, path)
    return hashlib.sha256(content.encode()).hexdigest()


@asynccontextmanager
async def risky_platform(
    tmp_path: Path, ports: dict[str, int], rules: str, **risk: Any
) -> AsyncIterator[tuple[Running, Path]]:
    """The embedded platform deciding with the rules file `rules` (reloaded every 0.1 s)."""
    rules_file = tmp_path / "rules.yaml"
    write_rules(rules_file, rules)
    # Every listener on a port picked beforehand: an admin listener on port 0 could be
    # given one of the ports picked for the services.
    admin = f"127.0.0.1:{ports['admin']}"
    settings = Settings(
        var_dir=tmp_path / "var",
        accounts={"listen": f"127.0.0.1:{ports['accounts']}", "admin_listen": admin},
        risk={
            "listen": f"127.0.0.1:{ports['risk']}",
            "rules_file": str(rules_file),
            "rules_reload_interval_s": 0.1,
            "admin_listen": admin,
            **risk,
        },
        payments={
            "listen": f"127.0.0.1:{ports['payments']}",
            "resume_interval_s": 0.5,
            "admin_listen": admin,
        },
        webhooks={"listen": f"127.0.0.1:{ports['webhooks']}", "admin_listen": admin},
        gateway={"port": ports["gateway"], "admin_listen": admin},
    )
    platform = Platform(settings)
    await platform.start()
    try:
        creds = await bootstrap(platform)
        yield Running(platform, f"http://127.0.0.1:{ports['gateway']}", creds), rules_file
    finally:
        await platform.stop()
    db = Database(settings.accounts.database_url)
    try:
        audit = await verify(db)
    finally:
        await db.dispose()
    assert audit.ok, "\n".join(str(p) for p in audit.problems)


async def until(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, attempts: int = 400
) -> T:
    """`read()` again until `done` holds for what it answers (at most `attempts` times)."""
    for _ in range(attempts):
        value = await read()
        if done(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"still not done after {attempts} attempts: {value!r}")


async def demo(running: Running) -> Api:
    """The demo tenant's client (it holds every scope but admin, risk:admin included)."""
    return await Api.login(running.url, running.creds["client_id"], running.creds["client_secret"])


async def funded_pair(api: Api, amount: int = 50_000) -> tuple[str, str]:
    """A customer account topped up with `amount` USD, and a merchant account."""
    payer = await api.post("/v1/accounts", {"currency": "USD", "type": "customer"}, key=_key())
    payee = await api.post("/v1/accounts", {"currency": "USD", "type": "merchant"}, key=_key())
    await api.post(
        "/v1/topups", {"account_id": payer["id"], "amount": amount, "currency": "USD"}, key=_key()
    )
    return str(payer["id"]), str(payee["id"])


async def pay(api: Api, payer: str, payee: str, amount: int) -> dict[str, Any]:
    body = {
        "payer_account_id": payer,
        "payee_account_id": payee,
        "amount": amount,
        "currency": "USD",
        "capture_method": "automatic",
    }
    return await api.post("/v1/payments", body, key=_key())


async def balance(api: Api, account_id: str) -> dict[str, int]:
    return dict((await api.get(f"/v1/accounts/{account_id}"))["balance"])


def _key() -> str:
    return str(uuid.uuid4())


def _tenant_of(api: Api) -> str:
    """The tenant id in the client's access token (its claims, read without verifying)."""
    token = api.http.headers["Authorization"].split()[1]
    claims = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["tenant"])


async def test_a_velocity_rule_declines_the_fourth_payment_and_rules_reload_without_restart(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    async with risky_platform(tmp_path, ports, VELOCITY_RULES.format(max_count=3)) as (
        running,
        rules_file,
    ):
        api = await demo(running)
        try:
            rules = await api.get("/v1/risk/rules")
            first_checksum = rules["checksum"]
            assert (
                first_checksum
                == hashlib.sha256(VELOCITY_RULES.format(max_count=3).encode()).hexdigest()
            )
            assert (rules["version"], rules["source"], rules["last_error"]) == (
                "velocity-1",
                str(rules_file),
                None,
            )
            assert [(r["id"], r["kind"], r["action"], r["reason"]) for r in rules["rules"]] == [
                ("payer-burst", "velocity", "decline", "velocity_payer_count")
            ]

            payer, payee = await funded_pair(api)
            for _ in range(3):
                assert (await pay(api, payer, payee, 1_000))["status"] == "succeeded"
            before = await balance(api, payer)
            entries_before = (await api.get(f"/v1/accounts/{payer}/entries"))["data"]

            fourth = await pay(api, payer, payee, 1_000)
            fetched = await api.get(f"/v1/payments/{fourth['id']}")
            assert (fetched["status"], fetched["failure_code"]) == ("failed", "risk_declined")
            assert fetched["risk"]["decision"] == "decline"
            assert fetched["risk"]["reasons"] == ["velocity_payer_count"]
            assert (
                await balance(api, payer)
                == before
                == {
                    "available": 47_000,
                    "pending": 0,
                    "posted": 47_000,
                }
            )
            assert (await api.get(f"/v1/accounts/{payer}/entries"))["data"] == entries_before

            # A new rules file: the next decision follows it, without a restart.
            raised = write_rules(rules_file, VELOCITY_RULES.format(max_count=10))
            await until(lambda: api.get("/v1/risk/rules"), lambda r: r["checksum"] == raised)
            assert (await pay(api, payer, payee, 1_000))["status"] == "succeeded"

            # An invalid file is refused: the error is shown, the last good rules decide.
            broken = VELOCITY_RULES.format(max_count=1).replace("window_s: 60", "window_s: -1")
            write_rules(rules_file, broken)
            shown = await until(
                lambda: api.get("/v1/risk/rules"), lambda r: r["last_error"] is not None
            )
            assert shown["checksum"] == raised
            assert "window_s" in shown["last_error"]
            assert (await pay(api, payer, payee, 1_000))["status"] == "succeeded"
        finally:
            await api.close()


async def test_a_payment_in_review_is_approved_or_declined_by_an_operator(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    async with risky_platform(tmp_path, ports, REVIEW_RULES, review_timeout_s=3600) as (
        running,
        _,
    ):
        api = await demo(running)
        try:
            payer, payee = await funded_pair(api, 20_000)
            held = await pay(api, payer, payee, 6_000)
            assert held["status"] == "in_review"
            assert held["risk"] == {
                "decision": "review",
                "score": held["risk"]["score"],
                "reasons": ["amount_needs_review"],
                "rules_version": "review-1",
            }
            assert await balance(api, payer) == {
                "available": 14_000,
                "pending": -6_000,
                "posted": 20_000,
            }
            queue = await api.get("/v1/reviews")
            assert [r["payment_id"] for r in queue["data"]] == [held["id"]]
            review = queue["data"][0]
            assert (review["status"], review["amount"], review["payer_account_id"]) == (
                "open",
                6_000,
                payer,
            )
            assert review["decision"]["reasons"] == ["amount_needs_review"]

            approved = await api.post(
                f"/v1/reviews/{held['id']}/approve", {"note": "known customer"}, status=200
            )
            assert (approved["status"], approved["note"]) == ("approved", "known customer")
            done = await until(
                lambda: api.get(f"/v1/payments/{held['id']}"),
                lambda p: p["status"] != "in_review" and p["status"] != "processing",
            )
            assert (done["status"], done["amount_captured"]) == ("succeeded", 6_000)
            assert await balance(api, payer) == {
                "available": 14_000,
                "pending": 0,
                "posted": 14_000,
            }
            assert (await balance(api, payee))["posted"] == 6_000
            clash = await api.http.post(f"/v1/reviews/{held['id']}/decline", json={})
            assert clash.status_code == 409
            assert clash.json()["code"] == "review_already_resolved"

            other = await pay(api, payer, payee, 7_000)
            assert other["status"] == "in_review"
            assert (await balance(api, payer))["available"] == 7_000
            declined = await api.post(f"/v1/reviews/{other['id']}/decline", {}, status=200)
            assert declined["status"] == "declined"
            failed = await until(
                lambda: api.get(f"/v1/payments/{other['id']}"),
                lambda p: p["status"] == "failed",
            )
            assert failed["failure_code"] == "risk_declined"
            assert await balance(api, payer) == {
                "available": 14_000,
                "pending": 0,
                "posted": 14_000,
            }
            assert (await balance(api, payee))["posted"] == 6_000
            resolved = await api.get("/v1/reviews?status=declined")
            assert [r["payment_id"] for r in resolved["data"]] == [other["id"]]
            assert (await api.get("/v1/reviews"))["data"] == []
        finally:
            await api.close()


async def test_a_blocked_payer_is_declined_until_unblocked_and_lists_need_risk_admin(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    async with risky_platform(tmp_path, ports, REVIEW_RULES) as (running, _):
        api = await demo(running)
        operator = await Api.login(
            running.url,
            running.creds["operator_client_id"],
            running.creds["operator_client_secret"],
        )
        try:
            payer, payee = await funded_pair(api)
            entries = "/v1/risk/lists/blocked_accounts/entries"
            added = await api.post(entries, {"value": payer, "note": "chargebacks"}, key=_key())
            assert (added["list"], added["value"], added["note"]) == (
                "blocked_accounts",
                payer,
                "chargebacks",
            )
            listed = await api.get(entries)
            assert [e["value"] for e in listed["data"]] == [payer]

            blocked = await pay(api, payer, payee, 1_000)
            assert (blocked["status"], blocked["risk"]["reasons"]) == ("failed", ["blocked_payer"])
            assert (await balance(api, payer))["available"] == 50_000

            removed = await api.http.delete(f"{entries}/{payer}")
            assert (removed.status_code, removed.json()) == (200, {"removed": True})
            assert (await api.http.delete(f"{entries}/{payer}")).status_code == 404
            assert (await pay(api, payer, payee, 1_000))["status"] == "succeeded"

            # A client of the same tenant without risk:admin is refused every risk route.
            tenant = _tenant_of(api)
            creds = await operator.post(
                f"/v1/tenants/{tenant}/clients",
                {"scopes": ["payments:read", "payments:write", "accounts:read"]},
                key=_key(),
            )
            plain = await Api.login(running.url, creds["client_id"], creds["client_secret"])
            try:
                for method, path in [
                    ("GET", "/v1/risk/rules"),
                    ("GET", entries),
                    ("POST", entries),
                    ("DELETE", f"{entries}/{payer}"),
                    ("GET", "/v1/reviews"),
                    ("POST", f"/v1/reviews/{blocked['id']}/approve"),
                ]:
                    body = {"value": payer} if method == "POST" else None
                    r = await plain.http.request(method, path, json=body)
                    assert r.status_code == 403, (method, path, r.text)
                    assert r.json()["code"] == "insufficient_scope"
            finally:
                await plain.close()
            assert (await api.get(entries))["data"] == []
        finally:
            await operator.close()
            await api.close()


async def test_a_review_left_past_its_timeout_follows_the_configured_default(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    async with risky_platform(
        tmp_path,
        ports,
        REVIEW_RULES,
        review_timeout_s=1.0,
        review_sweep_interval_s=0.1,
        review_timeout_resolution="approve",
    ) as (running, _):
        api = await demo(running)
        try:
            payer, payee = await funded_pair(api, 20_000)
            held = await pay(api, payer, payee, 6_000)
            assert held["status"] == "in_review"
            done = await until(
                lambda: api.get(f"/v1/payments/{held['id']}"),
                lambda p: p["status"] == "succeeded",
            )
            assert done["amount_captured"] == 6_000
            review = await api.get(f"/v1/reviews/{held['id']}")
            assert (review["status"], review["resolved_by"]) == ("approved", "timeout")
            assert (await balance(api, payee))["posted"] == 6_000
        finally:
            await api.close()
