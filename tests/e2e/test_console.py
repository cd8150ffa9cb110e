"""The operator console over HTTP on the embedded platform: signing in, sessions, CSRF,
the security headers, roles, tenancy and the payment actions, against the real services.
(The same flows in a real browser: test_console_browser.py.)"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pyotp
import pytest

from paymesh.gateway.console.core import CSP
from paymesh.gateway.operator import add_tenant, list_users, recent_audit, set_user_disabled

from .conftest import Api, Running
from .console_helpers import (
    CSRF_FIELD,
    KEY_FIELD,
    Browser,
    demo_api,
    first_sign_in,
    new_user,
    paid,
    signed_in_admin,
    signed_in_user,
    tenant_of,
)
from .receiver import Receiver


async def test_the_demo_admin_signs_in_and_every_answer_has_the_security_headers(
    embedded: Running,
) -> None:
    assert embedded.creds["console_email"] == "admin@paymesh.localhost"
    b = await signed_in_admin(embedded)
    try:
        for path in ("/", "/payments", "/audit", "/login", "/static/console.css"):
            r = await b.http.get(f"/console{path}")
            assert r.status_code == 200, (path, r.status_code)
            assert r.headers["content-security-policy"] == CSP
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["x-content-type-options"] == "nosniff"
        home = (await b.get("/")).text
        assert "admin@paymesh.localhost" in home
        assert "Open reviews" in home
        assert "Webhook endpoints failing" in home
        assert home.count('<rect class="bar"') == 24  # payments per hour, inline SVG
        # No page loads anything from another origin, and none has a script at all.
        for path in ("/", "/payments", "/audit"):
            html = (await b.get(path)).text
            assert "<script" not in html
            assert not re.search(r'(?:src|href)="(?:https?:)?//', html), path
    finally:
        await b.close()


async def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_console(
    embedded: Running,
) -> None:
    b = Browser(embedded.url)
    try:
        r = await b.sign_in(embedded.creds["console_email"], embedded.creds["console_password"])
        cookie = next(
            v for k, v in r.headers.multi_items() if k == "set-cookie" and "paymesh_console=" in v
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/console" in cookie
        # Signing out ends the session on the server: the old cookie opens nothing.
        token = b.http.cookies.get("paymesh_console")
        await b.post("/logout", {"csrf": await b.form("/tenant")})
        stale = httpx.AsyncClient(base_url=embedded.url, cookies={"paymesh_console": token or ""})
        try:
            r = await stale.get("/console/tenant")
            assert r.status_code == 303
            assert r.headers["location"] == "/console/login"
        finally:
            await stale.aclose()
    finally:
        await b.close()


async def test_a_form_post_without_the_csrf_token_is_refused(embedded: Running) -> None:
    api = await demo_api(embedded)
    b = await signed_in_admin(embedded)
    try:
        p = await paid(api)
        page = f"/payments/{p['id']}/refund"
        await b.get(page)
        for csrf in ("", "forged"):
            await b.post(
                page, {"csrf": csrf, "key": str(uuid.uuid4()), "amount": "100"}, status=403
            )
        # Nor does sign-in take a form without the token its page set.
        fresh = Browser(embedded.url)
        try:
            await fresh.post(
                "/login",
                {"email": embedded.creds["console_email"], "password": "x", "csrf": "forged"},
                status=403,
            )
        finally:
            await fresh.close()
        after = await api.get(f"/v1/payments/{p['id']}")
        assert after["amount_refunded"] == 0
    finally:
        await b.close()
        await api.close()


async def test_support_refunds_part_of_a_payment_once_and_the_audit_log_names_them(
    embedded: Running,
) -> None:
    api = await demo_api(embedded)
    tenant = await tenant_of(api)
    b, email = await signed_in_user(embedded, "support", tenant)
    try:
        p = await paid(api)
        page = (await b.get(f"/payments/{p['id']}")).text
        assert f"/payments/{p['id']}/refund" in page
        form = (await b.get(f"/payments/{p['id']}/refund")).text
        csrf, key = CSRF_FIELD.search(form), KEY_FIELD.search(form)
        assert csrf
        assert key
        fields = {"csrf": csrf.group(1), "key": key.group(1), "amount": "1000", "reason": "x"}
        r = await b.post(f"/payments/{p['id']}/refund", fields)
        assert r.headers["location"].startswith(f"/console/payments/{p['id']}")
        # The same form sent twice (a double click) refunds once: the key makes the id.
        await b.post(f"/payments/{p['id']}/refund", fields)
        after = await api.get(f"/v1/payments/{p['id']}")
        assert after["amount_refunded"] == 1_000
        shown = (await b.get(f"/payments/{p['id']}")).text
        assert "10.00 USD" in shown  # refunded
        audit = await recent_audit(embedded.platform.settings, limit=50)
        refunds = [e for e in audit if e.action == "console.payment_refund"]
        assert [(e.actor, e.target, e.details) for e in refunds] == [
            (f"console:{email}", p["id"], {"amount": 1000})
        ] * 2
    finally:
        await b.close()
        await api.close()


async def test_a_viewer_sees_no_refund_and_a_forged_refund_is_refused(embedded: Running) -> None:
    api = await demo_api(embedded)
    tenant = await tenant_of(api)
    b, _ = await signed_in_user(embedded, "viewer", tenant)
    try:
        p = await paid(api)
        page = (await b.get(f"/payments/{p['id']}")).text
        assert p["id"] in page
        assert "/refund" not in page
        csrf = CSRF_FIELD.search(page)
        assert csrf  # the sign-out form's: a real session token
        await b.get(f"/payments/{p['id']}/refund", status=403)
        fields = {"csrf": csrf.group(1), "key": str(uuid.uuid4()), "amount": "500"}
        await b.post(f"/payments/{p['id']}/refund", fields, status=403)
        assert (await api.get(f"/v1/payments/{p['id']}"))["amount_refunded"] == 0
        # Nor is the audit log a viewer's to read, nor the reviews and webhooks it has
        # no scope for counted on its home page.
        await b.get("/audit", status=403)
        home = (await b.get("/")).text
        assert "Open reviews" not in home
        assert "Webhook endpoints failing" not in home
    finally:
        await b.close()
        await api.close()


async def test_a_tenant_user_cannot_open_another_tenants_payment(embedded: Running) -> None:
    api = await demo_api(embedded)
    other = await add_tenant(embedded.platform.settings, f"other-{uuid.uuid4().hex[:8]}")
    b, _ = await signed_in_user(embedded, "admin", other.id)
    try:
        p = await paid(api)
        r = await b.get(f"/payments/{p['id']}", status=404)
        # The same answer as for a payment that does not exist: nothing of it shows.
        assert p["payer_account_id"] not in r.text
        assert "25.00" not in r.text
        # Nor choose another tenant: it has its own.
        assert (await b.get("/tenant", status=303)).headers["location"] == "/console/"
        listing = (await b.get("/payments")).text
        assert p["id"] not in listing
    finally:
        await b.close()
        await api.close()


async def test_metadata_with_markup_is_shown_as_text(embedded: Running) -> None:
    api = await demo_api(embedded)
    b = await signed_in_admin(embedded)
    try:
        hostile = "<script>alert(1)</script>"
        p = await paid(api, metadata={"note": hostile}, description=hostile)
        html = (await b.get(f"/payments/{p['id']}")).text
        assert hostile not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    finally:
        await b.close()
        await api.close()


async def test_five_wrong_passwords_lock_sign_in_for_a_while(embedded: Running) -> None:
    email, one_time = await new_user(embedded, "viewer", None)
    b = Browser(embedded.url)
    try:
        for _ in range(5):
            r = await b.sign_in(email, "wrong password!", status=401)
            assert "wrong e-mail address or password" in r.text
        # Locked: even the right password is refused, with the same words (nothing tells
        # a guesser that the address exists).
        r = await b.sign_in(email, one_time, status=401)
        assert "wrong e-mail address or password" in r.text
        audit = await recent_audit(embedded.platform.settings, limit=50)
        reasons = [e.details.get("reason") for e in audit if e.target == email]
        assert reasons[:2] == ["locked", "locked_now"]
        assert reasons.count("wrong_password") == 4
    finally:
        await b.close()


async def test_failed_sign_ins_are_limited_per_address(embedded: Running) -> None:
    b = Browser(embedded.url)
    try:
        for i in range(10):  # the API's failed-credentials bucket: 10, then 1 per 10 s
            await b.sign_in(f"nobody{i}@example.com", "wrong password!", status=401)
        r = await b.sign_in("nobody@example.com", "wrong password!", status=429)
        assert "too many failed sign-ins from this address" in r.text
        # Refused before any password is checked: the right one too.
        creds = embedded.creds
        await b.sign_in(creds["console_email"], creds["console_password"], status=429)
    finally:
        await b.close()


async def test_a_user_on_a_one_time_password_can_sign_out(embedded: Running) -> None:
    email, one_time = await new_user(embedded, "viewer", None)
    b = Browser(embedded.url)
    try:
        await b.sign_in(email, one_time)
        csrf = await b.form("/password")
        r = await b.post("/logout", {"csrf": csrf})
        assert r.headers["location"] == "/console/login"
        assert (await b.get("/password", status=303)).headers["location"] == "/console/login"
    finally:
        await b.close()


async def test_an_admin_bound_to_a_tenant_reads_only_its_audit_entries(
    embedded: Running,
) -> None:
    other = await add_tenant(embedded.platform.settings, f"other-{uuid.uuid4().hex[:8]}")
    b, email = await signed_in_user(embedded, "admin", other.id)
    platform_admin = await signed_in_admin(embedded)
    try:
        mine = (await b.get("/audit")).text
        assert email in mine
        assert embedded.creds["console_email"] not in mine
        everything = (await platform_admin.get("/audit")).text
        assert email in everything
        assert embedded.creds["console_email"] in everything
    finally:
        await b.close()
        await platform_admin.close()


@pytest.mark.parametrize(
    "path",
    [
        "/payments?amount_min=%C2%B2",
        "/payments?amount_max=%E2%91%A0&since=2026-13-99",
        "/audit?before_at=99999999999999999999999&before_id=x",
        "/audit?before_at=-1&before_id=x",
        "/audit?until=9999-12-31",
        "/audit?since=not-a-date",
        "/?done=Your%20session%20expired:%20go%20to%20https://evil.example",
    ],
)
async def test_odd_query_strings_are_never_a_5xx(embedded: Running, path: str) -> None:
    b = await signed_in_admin(embedded)
    try:
        r = await b.http.get(f"/console{path}")
        assert r.status_code in (200, 422), (path, r.status_code)
        assert "evil.example" not in r.text  # a flash is one of the console's own words
    finally:
        await b.close()


async def test_an_unknown_or_disabled_user_gets_the_same_answer_as_a_wrong_password(
    embedded: Running,
) -> None:
    email, one_time = await new_user(embedded, "viewer", None)
    await set_user_disabled(embedded.platform.settings, email, True)
    b = Browser(embedded.url)
    try:
        disabled = await b.sign_in(email, one_time, status=401)
        unknown = await b.sign_in("nobody@example.com", one_time, status=401)
        junk = await b.sign_in("not an address", one_time, status=401)
        for r in (disabled, unknown, junk):
            assert "wrong e-mail address or password" in r.text
    finally:
        await b.close()


async def test_a_new_password_must_follow_the_rules(embedded: Running) -> None:
    email, one_time = await new_user(embedded, "viewer", None)
    b = Browser(embedded.url)
    try:
        await b.sign_in(email, one_time)
        cases = [
            (one_time, "short", "short", "at least 12"),
            (one_time, "a long new password", "a different one!!", "differ"),
            ("not the password", "a long new password", "a long new password", "wrong"),
        ]
        for current, new, again, why in cases:
            csrf = await b.form("/password")
            r = await b.post(
                "/password",
                {"current": current, "new": new, "again": again, "csrf": csrf},
                status=422,
            )
            assert why in r.text
    finally:
        await b.close()


@pytest.mark.parametrize("path", ["/payments/pay_nope", "/payments/pay_nope/refund", "/nope"])
async def test_unknown_pages_and_objects_are_4xx(embedded: Running, path: str) -> None:
    b = await signed_in_admin(embedded)
    try:
        r = await b.http.get(f"/console{path}")
        assert r.status_code == 404
    finally:
        await b.close()


async def test_filters_find_a_payment_by_status_and_amount(embedded: Running) -> None:
    api = await demo_api(embedded)
    b = await signed_in_admin(embedded)
    try:
        manual = await paid(api, amount=1_234, capture="manual")
        auto = await paid(api, amount=4_321)
        held = (await b.get("/payments?status=requires_capture")).text
        assert manual["id"] in held
        assert auto["id"] not in held
        big = (await b.get("/payments?amount_min=4000")).text
        assert auto["id"] in big
        assert manual["id"] not in big
        by_id = await b.get(f"/payments?id={manual['id']}", status=303)
        assert by_id.headers["location"] == f"/console/payments/{manual['id']}"
        # The manual one can be captured from its page.
        await b.act(f"/payments/{manual['id']}/capture", {"amount": ""})
        assert (await api.get(f"/v1/payments/{manual['id']}"))["status"] == "succeeded"
    finally:
        await b.close()
        await api.close()


async def test_each_role_reaches_only_its_pages(embedded: Running) -> None:
    api = await demo_api(embedded)
    tenant = await tenant_of(api)
    browsers: dict[str, Browser] = {}
    try:
        for role in ("viewer", "support", "risk"):
            browsers[role], _ = await signed_in_user(embedded, role, tenant)
        p = await paid(api)
        expected = {
            # page: (viewer, support, risk)
            "/risk/reviews": (403, 403, 200),
            "/risk/rules": (403, 403, 200),
            "/risk/lists/blocked_accounts": (403, 403, 200),
            "/webhooks": (403, 200, 403),
            f"/payments/{p['id']}/refund": (403, 200, 403),
            "/audit": (403, 403, 403),
            "/payments": (200, 200, 200),
        }
        for path, statuses in expected.items():
            got = tuple(
                [
                    (await browsers[r].http.get(f"/console{path}")).status_code
                    for r in ("viewer", "support", "risk")
                ]
            )
            assert got == statuses, path
        # A support agent resends but does not manage endpoints: a forged create is refused.
        support = browsers["support"]
        csrf = await support.form("/webhooks")
        r = await support.http.post(
            "/console/webhooks",
            data={"csrf": csrf, "key": "k", "url": "https://merchant.example/hook"},
        )
        assert r.status_code == 403
        listed = await api.get("/v1/webhook_endpoints")
        assert listed["data"] == []
    finally:
        for b in browsers.values():
            await b.close()
        await api.close()


async def test_risk_and_webhook_forms_refuse_bad_input_with_4xx(embedded: Running) -> None:
    b = await signed_in_admin(embedded)
    try:
        await b.get("/risk/lists/Not-A-List", status=404)
        await b.get("/risk/lists?name=..%2F..", status=422)
        csrf = await b.form("/risk/lists/blocked_accounts")
        r = await b.post(
            "/risk/lists/blocked_accounts",
            {"csrf": csrf, "op": "add", "value": "a/b"},
            status=422,
        )
        assert "surrounding spaces" in r.text
        assert (await b.get("/risk/reviews?status=bogus")).status_code == 200
        await b.get("/risk/reviews/pay_nope", status=404)
        csrf = await b.form("/webhooks")
        r = await b.post("/webhooks", {"csrf": csrf, "key": "k", "url": "not a url"}, status=422)
        await b.get("/webhooks/we_nope", status=404)
        await b.post("/webhooks/we_nope/rotate", {"csrf": csrf}, status=404)
        await b.post("/webhooks/we_nope/explode", {"csrf": csrf}, status=404)
        await b.post("/risk/reviews/pay_nope/approve", {"csrf": csrf}, status=404)
    finally:
        await b.close()


async def test_an_account_shows_its_balances_statement_and_csv(embedded: Running) -> None:
    api = await demo_api(embedded)
    b = await signed_in_admin(embedded)
    try:
        p = await paid(api, amount=2_500)
        payer = p["payer_account_id"]
        listing = (await b.get("/accounts")).text
        assert payer in listing
        assert (await b.get(f"/accounts?id={payer}", status=303)).headers[
            "location"
        ] == f"/console/accounts/{payer}"
        page = (await b.get(f"/accounts/{payer}")).text
        assert "75.00 USD" in page  # available: 100.00 topped up, 25.00 paid
        assert f"{p['id']}:capture" in page
        r = await b.get(f"/accounts/{payer}/statement.csv")
        assert r.headers["content-type"].startswith("text/csv")
        assert r.headers["content-disposition"] == f'attachment; filename="statement-{payer}.csv"'
        lines = r.text.splitlines()
        assert lines[0] == "transfer_id,created,type,status,amount,currency,reference"
        by_id = {line.split(",")[0]: line.split(",") for line in lines[1:]}
        assert by_id[f"{p['id']}:capture"][4] == "-2500"
        assert by_id[f"{p['id']}:capture"][6] == p["id"]
        # The top-up, the hold and the capture that posted it, as the REST entries show them.
        assert sorted((row[2], row[4]) for row in by_id.values()) == [
            ("capture", "-2500"),
            ("payment", "-2500"),
            ("topup", "10000"),
        ]
        await b.get("/accounts/acct_nope", status=404)
        await b.get("/accounts/acct_nope/statement.csv", status=404)
        audit = await recent_audit(embedded.platform.settings, limit=20)
        assert any(e.action == "console.statement_exported" and e.target == payer for e in audit)
    finally:
        await b.close()
        await api.close()


async def test_a_payments_page_shows_its_events_transfers_and_deliveries(
    embedded: Running,
) -> None:
    receiver = Receiver()
    await receiver.start()
    api = await demo_api(embedded)
    b = await signed_in_admin(embedded)
    try:
        endpoint = await api.post(
            "/v1/webhook_endpoints",
            {"url": receiver.url, "events": ["payment.succeeded", "refund.succeeded"]},
            key=str(uuid.uuid4()),
        )
        p = await paid(api, amount=2_500)
        refund = await api.post(
            "/v1/refunds", {"payment_id": p["id"], "amount": 500}, key=str(uuid.uuid4())
        )
        await receiver.wait_for(2)
        for _ in range(100):  # the delivery log is written after the answer arrives
            page = (await b.get(f"/payments/{p['id']}")).text
            if page.count("succeeded</span>") >= 3:
                break
            await asyncio.sleep(0.05)
        assert "payment.succeeded" in page
        assert "refund.succeeded" in page
        for transfer in (f"{p['id']}:hold", f"{p['id']}:capture", refund["id"]):
            assert transfer in page
        assert receiver.url in page
        assert endpoint["id"] in page
        # A viewer sees the events and transfers, not the webhooks it has no scope for.
        viewer, _ = await signed_in_user(embedded, "viewer", await tenant_of(api))
        try:
            seen = (await viewer.get(f"/payments/{p['id']}")).text
            assert f"{p['id']}:capture" in seen
            assert receiver.url not in seen
        finally:
            await viewer.close()
    finally:
        await b.close()
        await api.close()
        await receiver.stop()


_SECRET = re.compile(r'class="secret"><code>([^<]+)</code>')
_TOTP_KEY = re.compile(r'class="secret"><code>([A-Z2-7]+)</code>')


async def test_a_platform_admin_manages_tenants_clients_users_and_keys(
    embedded: Running,
) -> None:
    b = await signed_in_admin(embedded)
    try:
        csrf = await b.form("/admin/tenants")
        r = await b.post("/admin/tenants", {"csrf": csrf, "name": "acme console"})
        tenant_page = r.headers["location"].split("?")[0].removeprefix("/console")
        tenant_id = tenant_page.rsplit("/", 1)[1]
        await b.post("/admin/tenants", {"csrf": csrf, "name": "acme console"}, status=409)
        made = await b.post(
            tenant_page,
            {"csrf": csrf, "op": "create", "scopes": ["payments:read", "accounts:read"]},
            status=200,
        )
        secret = _SECRET.search(made.text)
        assert secret
        client_id = re.search(r"client_id (cli_\w+)", made.text)
        assert client_id
        api = await Api.login(embedded.url, client_id.group(1), secret.group(1))
        try:
            assert (await api.get("/v1/accounts"))["data"] == []
        finally:
            await api.close()
        await b.post(tenant_page, {"csrf": csrf, "op": "create"}, status=422)  # no scopes
        await b.post(tenant_page, {"csrf": csrf, "op": "revoke", "client_id": client_id.group(1)})
        token = await b.http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id.group(1),
                "client_secret": secret.group(1),
            },
        )
        assert token.status_code == 401

        made = await b.post(
            "/admin/users",
            {"csrf": csrf, "op": "create", "email": "new@example.com", "role": "viewer",
             "tenant_id": tenant_id},
            status=200,
        )  # fmt: skip
        one_time = _SECRET.search(made.text)
        assert one_time
        newcomer = Browser(embedded.url)
        try:
            r = await newcomer.sign_in("new@example.com", one_time.group(1))
            assert r.headers["location"] == "/console/password"
            await b.post(
                "/admin/users", {"csrf": csrf, "op": "disable", "email": "new@example.com"}
            )
            assert (
                (await newcomer.get("/password", status=303)).headers["location"].endswith("/login")
            )
            await newcomer.sign_in("new@example.com", one_time.group(1), status=401)
            await b.post("/admin/users", {"csrf": csrf, "op": "enable", "email": "new@example.com"})
            reset = await b.post(
                "/admin/users",
                {"csrf": csrf, "op": "reset", "email": "new@example.com"},
                status=200,
            )
            again = _SECRET.search(reset.text)
            assert again
            await newcomer.sign_in("new@example.com", again.group(1))
        finally:
            await newcomer.close()

        keys_before = (await b.get("/admin/keys")).text.count("<code>")
        await b.post("/admin/keys", {"csrf": csrf})
        keys = (await b.get("/admin/keys")).text
        assert keys.count("<code>") == keys_before + 1
        assert keys.count(">active<") == 1

        audit = await recent_audit(embedded.platform.settings, limit=100)
        actions = {
            e.action for e in audit if e.actor == f"console:{embedded.creds['console_email']}"
        }
        assert {"tenant.created", "client.created", "client.revoked", "key.rotated"} <= actions
        text = repr([e.details for e in audit])
        for shown_once in (secret.group(1), one_time.group(1), again.group(1)):
            assert shown_once not in text
    finally:
        await b.close()


async def test_a_tenants_admin_manages_only_its_tenants_users_and_clients(
    embedded: Running,
) -> None:
    api = await demo_api(embedded)
    demo_tenant = await tenant_of(api)
    email, one_time = await new_user(embedded, "admin", demo_tenant)
    outsider, _ = await new_user(embedded, "viewer", None)  # a platform user
    await api.close()
    b = await first_sign_in(embedded, email, one_time)
    try:
        for path in ("/admin/tenants", "/admin/keys", "/admin/security"):
            await b.get(path, status=403)
        csrf = await b.form("/")
        await b.post("/admin/keys", {"csrf": csrf}, status=403)
        await b.post("/admin/tenants", {"csrf": csrf, "name": "sneaky"}, status=403)
        other = await add_tenant(embedded.platform.settings, f"other-{uuid.uuid4().hex[:8]}")
        await b.get(f"/admin/tenants/{other.id}", status=403)
        # Its own tenant's clients and users, yes; a user it makes is in its tenant.
        await b.get(f"/admin/tenants/{demo_tenant}")
        users = (await b.get("/admin/users")).text
        assert email in users
        assert outsider not in users
        made = await b.post(
            "/admin/users",
            {"csrf": csrf, "op": "create", "email": "mine@example.com", "role": "viewer",
             "tenant_id": ""},
            status=200,
        )  # fmt: skip
        assert "one-time password of mine@example.com" in made.text
        listed = {u.email: u.tenant_id for u in await list_users(embedded.platform.settings)}
        assert listed["mine@example.com"] == demo_tenant
        await b.post("/admin/users", {"csrf": csrf, "op": "disable", "email": outsider}, status=403)
    finally:
        await b.close()


async def test_a_role_an_admin_marks_must_enroll_and_give_a_second_factor(
    embedded: Running,
) -> None:
    admin = await signed_in_admin(embedded)
    api = await demo_api(embedded)
    email, one_time = await new_user(embedded, "support", await tenant_of(api))
    await api.close()
    b = Browser(embedded.url)
    try:
        csrf = await admin.form("/admin/security")
        await admin.post("/admin/security", {"csrf": csrf, "roles": ["support"]})
        assert 'value="support" checked' in (await admin.get("/admin/security")).text

        await b.sign_in(email, one_time)
        new = "correct horse battery staple"
        csrf = await b.form("/password")
        await b.post("/password", {"current": one_time, "new": new, "again": new, "csrf": csrf})
        # Required, not enrolled: nothing opens before enrolling.
        assert (await b.get("/payments", status=303)).headers["location"] == "/console/totp"
        page = (await b.get("/totp")).text
        key = _TOTP_KEY.search(page)
        assert key
        csrf = await b.form("/totp")
        await b.post("/totp", {"csrf": csrf, "code": "000000"}, status=422)
        r = await b.post("/totp", {"csrf": csrf, "code": pyotp.TOTP(key.group(1)).now()})
        assert r.headers["location"] == "/console/?done=totp"
        await b.get("/payments")

        # The next sign-in asks for a code before anything else.
        await b.post("/logout", {"csrf": csrf})
        await b.sign_in(email, new)
        assert (await b.get("/payments", status=303)).headers["location"] == "/console/totp/verify"
        csrf = await b.form("/totp/verify")
        await b.post("/totp/verify", {"csrf": csrf, "code": "12345x"}, status=422)
        ahead = pyotp.TOTP(key.group(1)).at(time.time() + 30)  # the enrollment's step is spent
        await b.post("/totp/verify", {"csrf": csrf, "code": ahead})
        await b.get("/payments")

        # An admin removes it (a lost phone): the user's sessions end.
        csrf = await admin.form("/admin/users")
        await admin.post("/admin/users", {"csrf": csrf, "op": "reset_totp", "email": email})
        assert (await b.get("/payments", status=303)).headers["location"] == "/console/login"
        audit = await recent_audit(embedded.platform.settings, limit=100)
        actions = [e.action for e in audit if email in (e.target or "")]
        for action in ("console.totp_enrolled", "console.second_factor", "console.totp_reset"):
            assert action in actions
    finally:
        await b.close()
        await admin.close()


async def test_an_admin_disables_and_enables_an_endpoint(embedded: Running) -> None:
    receiver = Receiver()
    await receiver.start()
    api = await demo_api(embedded)
    b = await signed_in_admin(embedded)
    try:
        endpoint = await api.post(
            "/v1/webhook_endpoints",
            {"url": receiver.url, "events": ["payment.succeeded"]},
            key=str(uuid.uuid4()),
        )
        page = f"/webhooks/{endpoint['id']}"
        csrf = await b.form(page)
        await b.post(f"{page}/disable", {"csrf": csrf})
        shown = await api.get(f"/v1/webhook_endpoints/{endpoint['id']}")
        assert (shown["status"], shown["disabled_reason"]) == ("disabled", "operator")
        assert "Webhook endpoints disabled for failing" not in (await b.get("/")).text
        await paid(api)  # not delivered: the endpoint is disabled
        await asyncio.sleep(1.0)
        assert receiver.requests == []
        await b.post(f"{page}/enable", {"csrf": csrf})
        assert (await api.get(f"/v1/webhook_endpoints/{endpoint['id']}"))["status"] == "enabled"
        second = await paid(api)
        (got,) = await receiver.wait_for(1)
        assert got.event["data"]["id"] == second["id"]
        audit = await recent_audit(embedded.platform.settings, limit=50)
        actions = {e.action for e in audit if e.target == endpoint["id"]}
        assert {"console.webhook_endpoint_disabled", "console.webhook_endpoint_enabled"} <= actions
    finally:
        await b.close()
        await api.close()
        await receiver.stop()
