"""The REST API: the app factory and its OpenAPI document.

The routes live by feature in :mod:`paymesh.gateway.features` (each feature's
routes, bodies and views together).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from paymesh.gateway.admission import Admission
from paymesh.gateway.clients import Client
from paymesh.gateway.console.service import ConsoleDeps
from paymesh.gateway.console.users import SessionPolicy
from paymesh.gateway.console.web import build_console
from paymesh.gateway.deps import Gateway
from paymesh.gateway.docs import install_docs
from paymesh.gateway.features import FEATURES, MONEY_MOVING
from paymesh.gateway.features.settlement.api import BANK_STATEMENTS_PATH
from paymesh.gateway.http_metrics import HttpMetricsMiddleware
from paymesh.gateway.limits import LimitsMiddleware
from paymesh.gateway.ports import GatewayStore
from paymesh.gateway.problems import install_problem_handlers, problem_responses
from paymesh.gateway.ratelimit import MemoryRateLimiter, Policy, RateLimiter, RedisRateLimiter
from paymesh.gateway.requestlog import RequestLogMiddleware
from paymesh.gateway.schemas import Problem
from paymesh.gateway.security import ResponseSealer, SecretHasher
from paymesh.gateway.service import ClientCache, KeyRing
from paymesh.gateway.settings import GatewaySettings
from paymesh.platform.clock import Clock, SystemClock
from paymesh.platform.settings import PlatformSettings

if TYPE_CHECKING:
    from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsAsyncStub
    from paymesh.contracts.payments.v1.payments_pb2_grpc import PaymentsAsyncStub
    from paymesh.contracts.risk.v1.risk_pb2_grpc import RiskAsyncStub
    from paymesh.contracts.webhooks.v1.webhooks_pb2_grpc import WebhooksAsyncStub

__all__ = ["build_limiter", "create_app"]

DESCRIPTION = """\
The public API of paymesh. JSON in and out; money is an integer of minor
units plus an upper-case ISO 4217 currency, never a float.

**Authentication**: OAuth2 client credentials. `POST /v1/oauth/token` with
your `client_id` and `client_secret`, then send `Authorization: Bearer
<access_token>`. Each operation lists the scope it needs.

**Errors** are RFC 9457 `application/problem+json` with a stable `code`.

**Request ids**: every answer has an `X-Request-Id` header: yours when you
send one (1-128 visible ASCII characters), else one the gateway made. The
platform's log lines about the request carry it.

**Abuse limits**: each API client has a token bucket (the `token`
endpoint: per `client_id`, or per address). Every answer carries
`RateLimit-Policy` and `RateLimit` headers; over the limit: 429
`rate_limited` with `Retry-After`. Failed client-credential attempts are
limited per address and per `client_id` (10, then one per 10 s, by
default; successes do not count): beyond that, 429 `rate_limited` before
the secret is checked. Bodies over 64 KiB (by default): 413
`payload_too_large`; a request unanswered after 30 s: 504 `request_timeout`.

**Overload**: money-moving POSTs that the platform cannot take on at once
wait their turn, or are answered 429 `overloaded` with `Retry-After`
before any work (the Idempotency-Key is not used up: retry with the same
key). Admitted requests wait for the services while they are busy rather
than failing with a 5xx.

**Idempotency**: every POST accepts an `Idempotency-Key` header;
money-moving POSTs (payments, capture, cancel, refunds, top-ups, payouts,
transfers) require it. The same key with the same request replays the first response (with
`Idempotent-Replayed: true`); with another request: 422
`idempotency_key_reused`; while the first is still running: 409
`idempotency_key_in_progress`.

**Balances**: `posted` = credits posted - debits posted; `available` =
posted - debits pending (holds); `pending` = credits pending - debits
pending.

**Fees**: each tenant has a fee schedule (`fixed` minor units plus
`basis_points` of the captured amount, never more than it), set by an
operator when the tenant is created. A capture charges it to the payee, in
the same atomic ledger batch, onto the tenant's revenue account; `fee` on
the payment shows it. Fees are not returned on refunds.

**Events**: `GET /v1/events` lists the tenant's events (CloudEvents 1.0,
the same that webhooks deliver), newest first.

**Risk** (scope `risk:admin`): `GET /v1/risk/rules` shows the rule set in
force (version, checksum, last rejected reload); `/v1/risk/lists/{list}/entries`
adds and removes block and allow list entries, effective for the next
decision; `/v1/reviews` lists the payments in review, and
`POST /v1/reviews/{payment_id}/approve` or `/decline` resolves one (the
payment then continues, or its hold is released).

**Webhooks** (scope `webhooks:write`): `POST /v1/webhook_endpoints` makes
an endpoint for the event types it names (or `*`); its signing `secret` is
shown once, in that answer (and again only by `rotate_secret`, which keeps
the old secret signing beside the new one for a grace period). Each delivery
is a POST of the event with headers `Paymesh-Event-Id` and
`Paymesh-Signature: t=<unix>,v1=<hex>` (HMAC-SHA256 of `t + "." + body`);
verify it with `paymesh.webhooks.signature.verify`. Failed deliveries are
retried with backoff; the delivery log shows every attempt.

**Lists**: `?limit=` (1-100) and `?starting_after=<id>`, answering
`{"data": [...], "has_more": bool}`.
"""


def create_app(
    *,
    settings: PlatformSettings,
    store: GatewayStore,
    accounts: AccountsAsyncStub,
    payments: PaymentsAsyncStub,
    clock: Clock | None = None,
    keys: KeyRing | None = None,
    limiter: RateLimiter | None = None,
    risk: RiskAsyncStub | None = None,
    webhooks: WebhooksAsyncStub | None = None,
    hasher: SecretHasher | None = None,
    console_hasher: SecretHasher | None = None,
) -> FastAPI:
    """The gateway's ASGI app over the given store and the services' stubs (in-memory
    fakes of them in tests; risk or webhooks None: their routes answer 503).

    Without `limiter`, one is built from settings (`gateway.redis_url`); the
    caller closes it (`app.state.gateway.limiter.aclose()`), and likewise the
    secret hashers (`app.state.gateway.hasher.close()`, `app.state.console_hasher.close()`:
    the console's passwords hash on threads of their own, so a flood of sign-ins cannot
    starve the API's token endpoint).
    """
    clock = clock or SystemClock()
    limiter = limiter or build_limiter(settings, clock=clock)
    g = settings.section(GatewaySettings)
    app = FastAPI(
        title="paymesh API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,  # served by install_docs, from vendored assets
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = Gateway(
        settings=settings,
        store=store,
        keys=keys
        or KeyRing(
            store,
            passphrase=g.secret_key.get_secret_value().encode(),
            clock=clock,
            token_ttl_s=g.token_ttl_s,
        ),
        clients=ClientCache(store, clock=clock),
        accounts=Client(accounts, service="accounts", deadline_s=settings.rpc_deadline_s),
        payments=Client(payments, service="payments", deadline_s=settings.rpc_deadline_s),
        clock=clock,
        sealer=ResponseSealer(g.secret_key.get_secret_value().encode()),
        limiter=limiter,
        auth_failures=Policy(
            capacity=g.auth_failure_burst, rate_per_s=g.auth_failure_per_s, name="auth-failures"
        ),
        hasher=hasher or SecretHasher(threads=g.hash_threads, max_waiting=g.hash_queue),
        admission=Admission(
            max_in_flight=g.admission_max_in_flight,
            max_queue=g.admission_queue,
            max_wait_s=min(g.admission_wait_s, g.request_timeout_s / 2),
        ),
        risk=Client(risk, service="risk", deadline_s=settings.rpc_deadline_s),
        webhooks=Client(webhooks, service="webhooks", deadline_s=settings.rpc_deadline_s),
    )
    app.add_middleware(
        LimitsMiddleware,
        max_body_bytes=g.max_body_bytes,
        timeout_s=g.request_timeout_s,
        larger={BANK_STATEMENTS_PATH: g.max_statement_bytes},
    )
    install_problem_handlers(app)  # its ProblemMiddleware wraps LimitsMiddleware
    # Outermost of ours: times every answer as the client gets it, the inner ones' too.
    app.add_middleware(
        HttpMetricsMiddleware, templates=lambda: app.openapi()["paths"], service="gateway"
    )
    # Outermost of ours: every answer, problems from any layer too, has the request id.
    app.add_middleware(RequestLogMiddleware)
    for feature in FEATURES:
        app.include_router(feature.router)
    install_docs(app, title=app.title)
    gw = app.state.gateway
    app.state.console_hasher = console_hasher or SecretHasher(
        threads=g.hash_threads, max_waiting=g.hash_queue
    )
    console = ConsoleDeps(
        store=store,
        clock=clock,
        hasher=app.state.console_hasher,
        policy=SessionPolicy(idle_s=g.console_idle_timeout_s, max_s=g.console_session_max_s),
        lock_attempts=g.console_lock_attempts,
        lock_s=g.console_lock_s,
        sealer=gw.sealer,
    )
    app.mount("/console", build_console(gw, console), name="console")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_RATE_HEADERS = {
    "RateLimit-Policy": {
        "description": (
            'The client\'s token bucket (draft-ietf-httpapi-ratelimit-headers), e.g. `"client";'
            "q=100;w=2`: q tokens at most, refilled from empty in w seconds."
        ),
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": (
            'What is left of it, e.g. `"client";r=17;t=1`: r whole requests may be made now, '
            "and the bucket is full again in t seconds. Absent if the limiter is unavailable."
        ),
        "schema": {"type": "string"},
    },
}
_RETRY_AFTER = {
    "description": "Whole seconds (at least 1) until the client may send a request again.",
    "schema": {"type": "integer", "minimum": 1},
}


def build_limiter(settings: PlatformSettings, *, clock: Clock | None = None) -> RateLimiter:
    """The rate limiter the settings ask for: Redis when `gateway.redis_url` is set."""
    g = settings.section(GatewaySettings)
    policy = Policy(capacity=g.rate_limit_burst, rate_per_s=g.rate_limit_per_s, name="client")
    if g.redis_url:
        return RedisRateLimiter.from_url(g.redis_url, policy, clock=clock)
    return MemoryRateLimiter(policy, clock=clock)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, plus the problem schema and required Idempotency-Keys."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version="3.1.0",
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            for limit in ("413", "429", "504"):  # any route may answer these
                responses.setdefault(limit, {})
            for status, response in responses.items():
                if status[0] in "45":  # FastAPI's default 422 too: every error is a problem
                    problem = problem_responses(int(status))[int(status)]
                    said = response.get("description", "")
                    if said.startswith(problem["description"]):  # a route says more (why)
                        problem = {**problem, "description": said}
                    response.update(problem)
                if status[0] == "2" or status == "429":
                    response["headers"] = {**response.get("headers", {}), **_RATE_HEADERS}
            responses["429"]["headers"]["Retry-After"] = _RETRY_AFTER
            if method == "post" and path in MONEY_MOVING:
                for param in op.get("parameters", []):
                    if param.get("in") == "header" and param.get("name") == "Idempotency-Key":
                        param["required"] = True
    return doc
