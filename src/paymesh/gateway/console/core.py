"""What every console page stands on: rendering (Jinja2, autoescaped, no script at all),
the security headers, and the guard in front of every signed-in page; and signing in
and out, changing the password, choosing the tenant (docs/console.md).

- Sessions are server-side (the gateway's database); the cookie holds a random token,
  HttpOnly, SameSite=Strict, Secure over HTTPS, scoped to ``/console``.
- Every state-changing form carries the session's CSRF token (sign-in: a token bound to
  a cookie of its own); a POST without it is refused with 403.
- Every answer has a strict Content-Security-Policy: everything from this origin, no
  inline script or style, no frames.
- Data comes from the services through the same calls and authorisation as the REST
  API: each request carries a :class:`Caller` of the session's tenant with the scopes of
  the user's role, and each action checks the scope its REST route needs.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.gateway.audit import Origin
from paymesh.gateway.console import totp
from paymesh.gateway.console.service import (
    ConsoleDeps,
    SignedIn,
    SignInRefused,
    change_password,
    choose_tenant,
    current_session,
    sign_in,
    sign_out,
)
from paymesh.gateway.deps import Gateway
from paymesh.gateway.domain import ADMIN, PAYMENTS_WRITE, RISK_ADMIN, WEBHOOKS_WRITE
from paymesh.gateway.errors import GatewayError
from paymesh.gateway.settings import GatewaySettings
from paymesh.platform.identity import Caller

__all__ = [
    "COOKIE",
    "CSP",
    "FLASH",
    "PAGE",
    "STATIC",
    "Console",
    "SecurityHeaders",
    "View",
    "day_us",
    "iso",
    "money",
    "whole_amount",
]

COOKIE = "paymesh_console"
LOGIN_COOKIE = "paymesh_console_login"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
# What a page says after an action, by the code the action's redirect names (?done=):
# never text from the query string itself.
FLASH = {
    "password": "Password changed.",
    "capture": "Payment captured.",
    "cancel": "Payment canceled: its hold is released.",
    "refund": "Refund made.",
    "approved": "Review approved: the payment goes on.",
    "declined": "Review declined: the payment's hold is released.",
    "added": "Entry added: it counts from the next decision.",
    "removed": "Entry removed.",
    "enabled": "Endpoint enabled.",
    "disabled": "Endpoint disabled: nothing is delivered to it until it is enabled.",
    "deleted": "Endpoint deleted.",
    "resent": "Event sent again: see the new delivery below.",
    "created": "Created.",
    "revoked": "API client revoked: its tokens stop working within seconds.",
    "disabled_user": "User disabled: its sessions have ended.",
    "enabled_user": "User enabled.",
    "rotated": "Signing key rotated.",
    "totp": "Second factor enrolled: sign-ins ask for a code from now on.",
    "totp_reset": "Second factor removed: the user enrolls again if its role requires it.",
    "policy": "Second-factor policy saved.",
}
_TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PAGE = 25  # rows per list page
_SCAN_MAX = 1000  # payments a filtered search looks through per page at most
_STATUSES = ("processing", "requires_capture", "succeeded", "canceled", "failed", "in_review")
_ZERO_DECIMALS = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"})
_ZERO_DECIMALS |= {"RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}


class SecurityHeaders:
    """Pure ASGI: the CSP and its companions on every answer; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(f"{scope.get('root_path', '')}/static")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def money(amount: int, currency: str) -> str:
    """Minor units as the currency writes them, e.g. 1234 EUR -> "12.34 EUR"."""
    if currency in _ZERO_DECIMALS:
        return f"{amount:,} {currency}"
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["money"] = money
    return env


@dataclass
class View:
    """One signed-in request: who, on which tenant, as which caller of the services."""

    request: Request
    signed: SignedIn
    form: FormData | None = None
    flash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def caller(self) -> Caller:
        """The caller the services see: the session's tenant, the role's scopes."""
        user = self.signed.user
        return Caller(
            tenant_id=self.signed.session.tenant_id or "",
            client_id=f"console:{user.email}"[:200],
            scopes=user.scopes,
        )

    def can(self, scope: str) -> bool:
        """Whether the user's role has `scope`."""
        return scope in self.signed.user.scopes

    @property
    def source(self) -> str:
        """Where the request came from, for the audit log."""
        return self.request.client.host if self.request.client else "unknown"

    @property
    def origin(self) -> Origin:
        """The user, as the audit log names it."""
        return Origin(actor=f"console:{self.signed.user.email}", source=self.source)


Handler = Callable[[View], Awaitable[Response]]


class Console:
    """The console's pages over a gateway's parts and the console's use cases."""

    def __init__(self, gw: Gateway, deps: ConsoleDeps) -> None:
        self.gw = gw
        self.deps = deps
        self.env = _environment()
        self._roles: tuple[int, frozenset[str]] = (-(10**18), frozenset())

    def forget_totp_roles(self) -> None:
        """Read the roles that require a second factor again at the next request (this
        gateway; others within 2 s)."""
        self._roles = (-(10**18), frozenset())

    async def _totp_roles(self) -> frozenset[str]:
        """The roles that require a second factor (read at most every 2 s)."""
        now = self.deps.clock.now_us()
        if now - self._roles[0] >= 2_000_000:
            self._roles = (now, await self.deps.store.totp_required_roles())
        return self._roles[1]

    # --- rendering ------------------------------------------------------

    def render(
        self,
        request: Request,
        name: str,
        *,
        status: int = 200,
        view: View | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The template `name` with `context`, the signed-in user's if any."""
        base = request.scope.get("root_path", "") or "/console"
        html = self.env.get_template(name).render(
            base=base,
            view=view,
            user=view.signed.user if view else None,
            session=view.signed.session if view else None,
            csrf=view.signed.session.csrf_token if view else "",
            can=view.can if view else (lambda scope: False),
            PAYMENTS_WRITE=PAYMENTS_WRITE,
            ADMIN=ADMIN,
            RISK_ADMIN=RISK_ADMIN,
            WEBHOOKS_WRITE=WEBHOOKS_WRITE,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def error(self, request: Request, status: int, message: str, view: View | None) -> Response:
        """An error page."""
        return self.render(request, "error.html", status=status, view=view, message=message)

    @staticmethod
    def redirect(request: Request, path: str, **query: str) -> RedirectResponse:
        """303 to `path` under the console (with `query`)."""
        base = request.scope.get("root_path", "") or "/console"
        suffix = f"?{urlencode(query)}" if query else ""
        return RedirectResponse(f"{base}{path}{suffix}", status_code=303)

    # --- the guard of every signed-in page ------------------------------

    def page(
        self, handler: Handler, *, scope: str | None = None, tenant: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind a live session (else the sign-in page), a changed one-time
        password, a chosen tenant (`tenant`), the role's `scope`, and on POST the CSRF
        token; a GatewayError from the services becomes an error page with its status."""

        async def endpoint(request: Request) -> Response:
            signed = await current_session(request.cookies.get(COOKIE, ""), deps=self.deps)
            if signed is None:
                return self.redirect(request, "/login")
            done = request.query_params.get("done", "")
            view = View(request=request, signed=signed, flash=FLASH.get(done, ""))
            # First the second factor, then a one-time password's change, then enrolling a
            # second factor the role requires: nothing else opens before each is done.
            if not signed.session.verified and handler not in (self.second_factor, self.logout):
                return self.redirect(request, "/totp/verify")
            if signed.user.must_change_password and handler not in (self.password, self.logout):
                return self.redirect(request, "/password")
            if (
                signed.user.totp_secret is None
                and handler not in (self.enroll, self.logout, self.password)
                and signed.user.role.value in await self._totp_roles()
            ):
                return self.redirect(request, "/totp")
            if tenant and signed.session.tenant_id is None:
                return self.redirect(request, "/tenant")
            if scope is not None and not view.can(scope):
                return self.error(request, 403, "your role does not allow this", view)
            if request.method == "POST":
                view.form = await request.form()
                sent = str(view.form.get("csrf", ""))
                if not hmac.compare_digest(sent.encode(), signed.session.csrf_token.encode()):
                    return self.error(request, 403, "the form is stale: open the page again", view)
            try:
                return await handler(view)
            except GatewayError as exc:
                return self.error(request, exc.http_status, exc.detail, view)

        return endpoint

    # --- signing in and out ---------------------------------------------

    async def login(self, request: Request) -> Response:
        """The sign-in form (GET) and signing in (POST). Failed attempts are limited per
        address (the API's failed-credentials bucket), charged before the password is
        hashed; a success gives the charge back."""
        if request.method == "GET":
            return self._login_form(request)
        form = await request.form()
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not cookie or not hmac.compare_digest(sent.encode(), self._login_token(cookie).encode()):
            return self._login_form(request, error="the form is stale: try again", status=403)
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        source = request.client.host if request.client else "unknown"
        gw, bucket = self.gw, f"consolefail:addr:{source}"
        if not (await gw.limiter.hit(bucket, gw.auth_failures)).allowed:
            error = "too many failed sign-ins from this address: try again later"
            return self._login_form(request, error=error, status=429, email=email)
        try:
            signed = await sign_in(email, password, source=source, deps=self.deps)
        except SignInRefused as exc:
            return self._login_form(request, error=str(exc), status=401, email=email)
        except GatewayError as exc:  # e.g. 429 overloaded: too many sign-ins hashing at once
            await gw.limiter.refund(bucket, gw.auth_failures)
            return self._login_form(request, error=exc.detail, status=exc.http_status)
        await gw.limiter.refund(bucket, gw.auth_failures)
        target = "/password" if signed.user.must_change_password else "/"
        response = self.redirect(request, target)
        self._set_cookie(request, response, COOKIE, signed.token)
        response.delete_cookie(
            LOGIN_COOKIE, path=self._base(request), httponly=True, samesite="strict"
        )
        return response

    def _login_token(self, cookie: str) -> str:
        """The sign-in form's CSRF token for the cookie's value: an HMAC under the
        gateway's secret key, which a cookie planted from elsewhere cannot match."""
        key = self.gw.settings.section(GatewaySettings).secret_key.get_secret_value()
        return hmac.new(key.encode(), f"console-login:{cookie}".encode(), "sha256").hexdigest()

    def _login_form(
        self, request: Request, *, error: str = "", status: int = 200, email: str = ""
    ) -> Response:
        cookie = secrets.token_urlsafe(24)
        response = self.render(
            request,
            "login.html",
            status=status,
            error=error,
            email=email,
            login_csrf=self._login_token(cookie),
        )
        self._set_cookie(request, response, LOGIN_COOKIE, cookie)
        return response

    @staticmethod
    def _base(request: Request) -> str:
        return request.scope.get("root_path", "") or "/console"

    def _set_cookie(self, request: Request, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            path=self._base(request),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https"
            or self.gw.settings.section(GatewaySettings).console_secure_cookies,
        )

    async def logout(self, view: View) -> Response:
        """Sign out (POST, with the CSRF token)."""
        await sign_out(view.signed, source=view.source, deps=self.deps)
        response = self.redirect(view.request, "/login")
        response.delete_cookie(
            COOKIE, path=self._base(view.request), httponly=True, samesite="strict"
        )
        return response

    async def password(self, view: View) -> Response:
        """Change the password (required after signing in with a one-time password)."""
        request = view.request
        if view.form is None:
            return self.render(request, "password.html", view=view, error="")
        current = str(view.form.get("current", ""))
        new, again = str(view.form.get("new", "")), str(view.form.get("again", ""))
        if new != again:
            return self.render(
                request,
                "password.html",
                view=view,
                status=422,
                error="the new password and its repetition differ",
            )
        try:
            await change_password(view.signed, current, new, source=view.source, deps=self.deps)
        except GatewayError as exc:
            return self.render(
                request, "password.html", view=view, status=exc.http_status, error=exc.detail
            )
        return self.redirect(request, "/", done="password")

    async def second_factor(self, view: View) -> Response:
        """The second factor after the password: a code from the authenticator app."""
        request = view.request
        if view.signed.session.verified:
            return self.redirect(request, "/")
        if view.form is None:
            return self.render(request, "totp_verify.html", view=view, error="")
        code = str(view.form.get("code", ""))
        try:
            await totp.verify(view.signed, code, source=view.source, deps=self.deps)
        except GatewayError as exc:
            return self.render(
                request, "totp_verify.html", view=view, status=exc.http_status, error=exc.detail
            )
        return self.redirect(request, "/")

    async def enroll(self, view: View) -> Response:
        """Enroll a second factor: a new secret for the authenticator app (GET), confirmed
        by a code from it (POST)."""
        request = view.request
        if view.signed.user.totp_secret is not None:
            return self.render(request, "totp_enroll.html", view=view, enrolled=True)
        if view.form is not None:
            try:
                await totp.confirm_enrollment(
                    view.signed, str(view.form.get("code", "")), source=view.source,
                    deps=self.deps,
                )  # fmt: skip
            except GatewayError as exc:
                secret, uri = totp.pending(view.signed, deps=self.deps) or ("", "")
                return self.render(
                    request, "totp_enroll.html", view=view, status=exc.http_status,
                    enrolled=False, error=exc.detail, secret=secret, uri=uri,
                )  # fmt: skip
            return self.redirect(request, "/", done="totp")
        # A reload shows the secret being enrolled, not a new one.
        found = totp.pending(view.signed, deps=self.deps)
        secret, uri = found or await totp.start_enrollment(view.signed, deps=self.deps)
        return self.render(
            request, "totp_enroll.html", view=view, enrolled=False, error="", secret=secret,
            uri=uri,
        )  # fmt: skip

    async def tenant(self, view: View) -> Response:
        """Choose the tenant to work on (platform users)."""
        request = view.request
        if view.signed.user.tenant_id is not None:
            return self.redirect(request, "/")
        if view.form is not None:
            await choose_tenant(
                view.signed,
                str(view.form.get("tenant_id", "")),
                source=view.source,
                deps=self.deps,
            )
            return self.redirect(request, "/")
        tenants = await self.deps.store.list_tenants()
        return self.render(request, "tenant.html", view=view, tenants=tenants)


def iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def day_us(text: str, *, end: bool = False) -> int | None:
    """Microseconds at the start of day `text` (YYYY-MM-DD, UTC), or of the next day."""
    if not text:
        return None
    day = dt.date.fromisoformat(text)
    if end:
        day += dt.timedelta(days=1)  # OverflowError after 9999-12-31
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1e6)


def whole_amount(text: str) -> int:
    """A form's amount in minor units (empty: 0, the whole amount)."""
    text = text.strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or len(text) > 16 or int(text) < 1:
        raise ValueError("the amount is a whole number of minor units, at least 1")
    return int(text)
