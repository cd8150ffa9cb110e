"""What the console's tests share: a cookie-keeping HTTP client on the console, and the
payments, users and sessions the tests start from."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from paymesh.gateway.operator import add_user

from .conftest import Api, Running

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
KEY_FIELD = re.compile(r'name="key" value="([^"]+)"')


class Browser:
    """A cookie-keeping HTTP client on the console, as a browser without script is."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30)

    async def get(self, path: str, *, status: int = 200) -> httpx.Response:
        r = await self.http.get(f"/console{path}")
        assert r.status_code == status, (r.status_code, r.text[:500])
        return r

    async def form(self, path: str, *, status: int = 200) -> str:
        """The CSRF token of the form on the page at `path`."""
        m = CSRF_FIELD.search((await self.get(path, status=status)).text)
        assert m, "no CSRF token on the page"
        return m.group(1)

    async def post(self, path: str, data: dict[str, str], *, status: int = 303) -> httpx.Response:
        r = await self.http.post(f"/console{path}", data=data)
        assert r.status_code == status, (r.status_code, r.text[:500])
        return r

    async def sign_in(self, email: str, password: str, *, status: int = 303) -> httpx.Response:
        csrf = await self.form("/login")
        return await self.post(
            "/login", {"email": email, "password": password, "csrf": csrf}, status=status
        )

    async def act(self, path: str, data: dict[str, str], *, status: int = 303) -> httpx.Response:
        """Submit the form on the page at `path` (its CSRF token and key) with `data`."""
        page = (await self.get(path)).text
        csrf, key = CSRF_FIELD.search(page), KEY_FIELD.search(page)
        assert csrf
        fields = {"csrf": csrf.group(1), **({"key": key.group(1)} if key else {}), **data}
        return await self.post(path, fields, status=status)

    async def close(self) -> None:
        await self.http.aclose()


async def demo_api(embedded: Running) -> Api:
    return await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )


async def tenant_of(api: Api) -> str:
    """The demo client's tenant id (the token's ``tenant`` claim)."""
    import jwt

    token = api.http.headers["Authorization"].split()[1]
    return str(jwt.decode(token, options={"verify_signature": False})["tenant"])


async def paid(
    api: Api, *, amount: int = 2_500, capture: str = "automatic", **extra: Any
) -> dict[str, Any]:
    """A payment between two new accounts of the demo tenant (the payer topped up)."""
    accounts = []
    for kind in ("customer", "merchant"):
        acct = await api.post(
            "/v1/accounts", {"currency": "USD", "type": kind}, key=str(uuid.uuid4())
        )
        accounts.append(acct["id"])
    await api.post(
        "/v1/topups",
        {"account_id": accounts[0], "amount": 10_000, "currency": "USD"},
        key=str(uuid.uuid4()),
    )
    body = {
        "payer_account_id": accounts[0],
        "payee_account_id": accounts[1],
        "amount": amount,
        "currency": "USD",
        "capture_method": capture,
        **extra,
    }
    return await api.post("/v1/payments", body, key=str(uuid.uuid4()))


async def signed_in_admin(embedded: Running) -> Browser:
    """The demo admin, signed in, working on the demo tenant."""
    b = Browser(embedded.url)
    r = await b.sign_in(embedded.creds["console_email"], embedded.creds["console_password"])
    assert r.headers["location"] == "/console/"
    assert (await b.get("/", status=303)).headers["location"] == "/console/tenant"
    api = await demo_api(embedded)
    try:
        tenant = await tenant_of(api)
    finally:
        await api.close()
    await b.post("/tenant", {"tenant_id": tenant, "csrf": await b.form("/tenant")})
    return b


async def new_user(embedded: Running, role: str, tenant: str | None) -> tuple[str, str]:
    """A new console user of `role` (email, one-time password) made as the CLI makes it."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    _, password = await add_user(embedded.platform.settings, email, role, tenant)
    return email, password


async def first_sign_in(embedded: Running, email: str, one_time: str) -> Browser:
    """Sign in with a one-time password and change it, as the console insists."""
    b = Browser(embedded.url)
    r = await b.sign_in(email, one_time)
    assert r.headers["location"] == "/console/password"
    # Nothing else opens before the password is changed.
    assert (await b.get("/payments", status=303)).headers["location"] == "/console/password"
    new = "correct horse battery staple"
    csrf = await b.form("/password")
    await b.post("/password", {"current": one_time, "new": new, "again": new, "csrf": csrf})
    return b


async def signed_in_user(embedded: Running, role: str, tenant: str | None) -> tuple[Browser, str]:
    """A new user of `role` (of `tenant`; None: a platform user), signed in with its
    one-time password changed: its browser and e-mail address."""
    email, one_time = await new_user(embedded, role, tenant)
    return await first_sign_in(embedded, email, one_time), email
