"""The console's pages: server-rendered HTML (Jinja2, autoescaped), no script at all,
mounted at ``/console`` on the gateway (docs/console.md).

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
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.contracts.objects import to_json
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.audit import Origin, record
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
from paymesh.gateway.domain import ADMIN, PAYMENTS_READ, PAYMENTS_WRITE, derive_id
from paymesh.gateway.errors import GatewayError
from paymesh.platform.identity import Caller

__all__ = ["COOKIE", "CSP", "build_console"]

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
_TEMPLATES = Path(__file__).parent / "templates"
_STATIC = Path(__file__).parent / "static"
_PAGE = 25  # rows per list page
_SCAN_MAX = 1000  # payments a filtered search looks through per page at most
_STATUSES = ("processing", "requires_capture", "succeeded", "canceled", "failed", "in_review")
_ZERO_DECIMALS = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"})
_ZERO_DECIMALS |= {"RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}


class _SecurityHeaders:
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
            view = View(request=request, signed=signed, flash=request.query_params.get("done", ""))
            if signed.user.must_change_password and handler != self.password:
                return self.redirect(request, "/password")
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
        """The sign-in form (GET) and signing in (POST)."""
        if request.method == "GET":
            return self._login_form(request)
        form = await request.form()
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
            return self._login_form(request, error="the form is stale: try again", status=403)
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        source = request.client.host if request.client else "unknown"
        try:
            signed = await sign_in(email, password, source=source, deps=self.deps)
        except SignInRefused as exc:
            status = 429 if exc.locked else 401
            return self._login_form(request, error=str(exc), status=status, email=email)
        except GatewayError as exc:  # e.g. 429 overloaded: too many sign-ins hashing at once
            return self._login_form(request, error=exc.detail, status=exc.http_status)
        target = "/password" if signed.user.must_change_password else "/"
        response = self.redirect(request, target)
        self._set_cookie(request, response, COOKIE, signed.token)
        response.delete_cookie(LOGIN_COOKIE, path=self._base(request))
        return response

    def _login_form(
        self, request: Request, *, error: str = "", status: int = 200, email: str = ""
    ) -> Response:
        token = secrets.token_urlsafe(24)
        response = self.render(
            request, "login.html", status=status, error=error, email=email, login_csrf=token
        )
        self._set_cookie(request, response, LOGIN_COOKIE, token)
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
            secure=request.url.scheme == "https",
        )

    async def logout(self, view: View) -> Response:
        """Sign out (POST, with the CSRF token)."""
        await sign_out(view.signed, source=view.source, deps=self.deps)
        response = self.redirect(view.request, "/login")
        response.delete_cookie(COOKIE, path=self._base(view.request))
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
        return self.redirect(request, "/", done="password changed")

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

    # --- pages ------------------------------------------------------------

    async def home(self, view: View) -> Response:
        """Today on the tenant: payments made today by status, volume, success rate."""
        gw, caller = self.gw, view.caller
        today = dt.datetime.now(dt.UTC).date().isoformat()
        found: list[dict[str, Any]] = []
        after, scanned, more = "", 0, True
        while more and scanned < _SCAN_MAX:
            page = await gw.payments.call(
                gw.payments.stub.ListPayments,
                ppb.ListPaymentsRequest(limit=100, starting_after=after),
                caller,
            )
            rows = [to_json(p) for p in page.payments]
            scanned += len(rows)
            todays = [r for r in rows if str(r["created"]).startswith(today)]
            found += todays
            more = page.has_more and len(todays) == len(rows) and bool(rows)
            after = rows[-1]["id"] if rows else ""
        by_status: dict[str, int] = {}
        failures: dict[str, int] = {}
        volume: dict[str, int] = {}
        for p in found:
            by_status[p["status"]] = by_status.get(p["status"], 0) + 1
            if p["status"] == "failed":
                code = p.get("failure_code") or "unknown"
                failures[code] = failures.get(code, 0) + 1
            if p["status"] == "succeeded":
                volume[p["currency"]] = volume.get(p["currency"], 0) + int(p["amount_captured"])
        done = by_status.get("succeeded", 0) + by_status.get("failed", 0)
        rate = f"{100 * by_status.get('succeeded', 0) / done:.1f} %" if done else "-"
        return self.render(
            view.request,
            "home.html",
            view=view,
            today=today,
            count=len(found),
            by_status=sorted(by_status.items()),
            failures=sorted(failures.items()),
            volume=sorted(volume.items()),
            rate=rate,
            capped=more,
        )

    async def payments(self, view: View) -> Response:
        """The tenant's payments, newest first, filtered, a page at a time."""
        gw, q = self.gw, view.request.query_params
        wanted_id = q.get("id", "").strip()
        if wanted_id:
            return self.redirect(view.request, f"/payments/{wanted_id}")
        filters = _PaymentFilter.parse(q)
        rows: list[dict[str, Any]] = []
        after, scanned, more = q.get("after", ""), 0, True
        while more and len(rows) < _PAGE and scanned < _SCAN_MAX:
            page = await gw.payments.call(
                gw.payments.stub.ListPayments,
                ppb.ListPaymentsRequest(limit=100, starting_after=after),
                view.caller,
            )
            for p in page.payments:
                scanned += 1
                after = p.id
                row = to_json(p)
                if filters.match(row):
                    rows.append(row)
                    if len(rows) == _PAGE:
                        break
            more = page.has_more or (len(rows) == _PAGE and after != page.payments[-1].id)
            if not page.payments:
                more = False
        next_query = {**filters.query(), "after": after} if more else None
        return self.render(
            view.request,
            "payments.html",
            view=view,
            rows=rows,
            filters=filters,
            statuses=_STATUSES,
            next_query=urlencode(next_query) if next_query else "",
            scanned=scanned,
        )

    async def payment(self, view: View) -> Response:
        """One payment: its state, risk decision and the actions its state allows."""
        found = await self._payment(view, view.request.path_params["payment_id"])
        return self.render(
            view.request, "payment_detail.html", view=view, p=found, actions=_actions(found)
        )

    async def _payment(self, view: View, payment_id: str) -> dict[str, Any]:
        """The payment `payment_id` of the session's tenant, in its JSON form."""
        gw = self.gw
        request = ppb.GetPaymentRequest(id=payment_id)
        payment = await gw.payments.call(gw.payments.stub.GetPayment, request, view.caller)
        return to_json(payment)

    async def payment_action(self, view: View) -> Response:
        """Confirm (GET) and do (POST) a capture, cancel or refund of a payment."""
        gw, request = self.gw, view.request
        payment_id, action = request.path_params["payment_id"], request.path_params["action"]
        if action not in ("capture", "cancel", "refund"):
            return self.error(request, 404, "no such page", view)
        found = await self._payment(view, payment_id)
        if action not in _actions(found):
            return self.error(
                request, 409, f"a {found['status']} payment cannot be {action}d", view
            )
        if view.form is None:
            return self._confirm(view, found, action)
        key = str(view.form.get("key", ""))[:64]
        try:
            amount = _amount(str(view.form.get("amount", "")))
        except ValueError as exc:
            return self._confirm(view, found, action, error=str(exc), status=422)
        if not key:
            return self._confirm(view, found, action, error="the form is stale", status=422)
        tenant = view.caller.tenant_id
        path = f"/console/payments/{payment_id}/{action}"

        def derive(prefix: str) -> str:
            return derive_id(prefix, tenant_id=tenant, key=key, path=path)

        if action == "capture":
            request_pb: Any = ppb.CapturePaymentRequest(
                id=payment_id, amount=amount, request_id=derive("capreq")
            )
            await gw.payments.call(gw.payments.stub.CapturePayment, request_pb, view.caller)
        elif action == "cancel":
            request_pb = ppb.CancelPaymentRequest(id=payment_id, request_id=derive("canreq"))
            await gw.payments.call(gw.payments.stub.CancelPayment, request_pb, view.caller)
        else:
            reason = str(view.form.get("reason", ""))[:200]
            request_pb = ppb.CreateRefundRequest(
                id=derive("re"), payment_id=payment_id, amount=amount, reason=reason
            )
            await gw.payments.call(gw.payments.stub.CreateRefund, request_pb, view.caller)
        await record(
            self.deps.store,
            self.deps.clock,
            view.origin,
            f"console.payment_{action}",
            tenant_id=tenant,
            target=payment_id,
            details={"amount": amount} if action != "cancel" else {},
        )
        return self.redirect(request, f"/payments/{payment_id}", done=f"{action} done")

    def _confirm(
        self, view: View, p: dict[str, Any], action: str, *, error: str = "", status: int = 200
    ) -> Response:
        return self.render(
            view.request,
            "confirm.html",
            view=view,
            status=status,
            p=p,
            action=action,
            key=str(uuid.uuid4()),
            error=error,
        )

    async def audit(self, view: View) -> Response:
        """The audit log, newest first, filtered by actor, action and date (admins)."""
        q = view.request.query_params
        before = None
        if "before_at" in q and "before_id" in q:
            try:
                before = (int(q["before_at"]), q["before_id"][:64])
            except ValueError:
                return self.error(view.request, 422, "before_at is not a number", view)
        try:
            since = _day_us(q.get("since", ""))
            until = _day_us(q.get("until", ""), end=True)
        except ValueError:
            return self.error(view.request, 422, "dates are YYYY-MM-DD", view)
        filters = {k: q.get(k, "")[:200] for k in ("actor", "action", "since", "until")}
        entries = await self.deps.store.audit_page(
            limit=_PAGE + 1,
            before=before,
            actor=filters["actor"] or None,
            action=filters["action"] or None,
            since_us=since,
            until_us=until,
        )
        more = len(entries) > _PAGE
        entries = entries[:_PAGE]
        next_query = ""
        if more:
            last = entries[-1]
            next_query = urlencode(
                {
                    **{k: v for k, v in filters.items() if v},
                    "before_at": last.at_us,
                    "before_id": last.id,
                }
            )
        return self.render(
            view.request,
            "audit.html",
            view=view,
            entries=entries,
            filters=filters,
            next_query=next_query,
            iso=_iso,
        )


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _day_us(text: str, *, end: bool = False) -> int | None:
    """Microseconds at the start of day `text` (YYYY-MM-DD, UTC), or of the next day."""
    if not text:
        return None
    day = dt.date.fromisoformat(text)
    if end:
        day += dt.timedelta(days=1)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1e6)


def _amount(text: str) -> int:
    """A form's amount in minor units (empty: 0, the whole amount)."""
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit() or len(text) > 16 or int(text) < 1:
        raise ValueError("the amount is a whole number of minor units, at least 1")
    return int(text)


def _actions(p: dict[str, Any]) -> list[str]:
    """What a payment's state allows."""
    if p["status"] == "requires_capture":
        return ["capture", "cancel"]
    if p["status"] == "succeeded" and int(p["amount_refunded"]) < int(p["amount_captured"]):
        return ["refund"]
    return []


@dataclass(frozen=True)
class _PaymentFilter:
    """The payments list's filters (all optional)."""

    status: str = ""
    account: str = ""
    amount_min: int | None = None
    amount_max: int | None = None
    since: str = ""
    until: str = ""

    @classmethod
    def parse(cls, q: Any) -> _PaymentFilter:
        def number(name: str) -> int | None:
            text = str(q.get(name, "")).strip()
            return int(text) if text.isdigit() and len(text) <= 16 else None

        def day(name: str) -> str:
            text = str(q.get(name, "")).strip()
            try:
                return dt.date.fromisoformat(text).isoformat() if text else ""
            except ValueError:
                return ""

        status = str(q.get("status", ""))
        return cls(
            status=status if status in _STATUSES else "",
            account=str(q.get("account", "")).strip()[:64],
            amount_min=number("amount_min"),
            amount_max=number("amount_max"),
            since=day("since"),
            until=day("until"),
        )

    def match(self, p: dict[str, Any]) -> bool:
        """Whether payment `p` (its JSON form) passes every filter set."""
        created = str(p["created"])[:10]
        return (
            (not self.status or p["status"] == self.status)
            and (not self.account or self.account in (p["payer_account_id"], p["payee_account_id"]))
            and (self.amount_min is None or int(p["amount"]) >= self.amount_min)
            and (self.amount_max is None or int(p["amount"]) <= self.amount_max)
            and (not self.since or created >= self.since)
            and (not self.until or created <= self.until)
        )

    def query(self) -> dict[str, str]:
        """The filters as query parameters."""
        values = {
            "status": self.status,
            "account": self.account,
            "amount_min": "" if self.amount_min is None else str(self.amount_min),
            "amount_max": "" if self.amount_max is None else str(self.amount_max),
            "since": self.since,
            "until": self.until,
        }
        return {k: v for k, v in values.items() if v}


def build_console(gw: Gateway, deps: ConsoleDeps) -> Starlette:
    """The console as an ASGI app, to mount at ``/console``."""
    c = Console(gw, deps)
    routes = [
        Route("/", c.page(c.home, scope=PAYMENTS_READ)),
        Route("/login", c.login, methods=["GET", "POST"]),
        Route("/logout", c.page(c.logout, tenant=False), methods=["POST"]),
        Route("/password", c.page(c.password, tenant=False), methods=["GET", "POST"]),
        Route("/tenant", c.page(c.tenant, tenant=False), methods=["GET", "POST"]),
        Route("/payments", c.page(c.payments, scope=PAYMENTS_READ)),
        Route("/payments/{payment_id}", c.page(c.payment, scope=PAYMENTS_READ)),
        Route(
            "/payments/{payment_id}/{action:str}",
            c.page(c.payment_action, scope=PAYMENTS_WRITE),
            methods=["GET", "POST"],
        ),
        Route("/audit", c.page(c.audit, scope=ADMIN, tenant=False)),
        Mount("/static", StaticFiles(directory=_STATIC), name="console-static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)])
