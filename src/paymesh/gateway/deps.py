"""What every route shares, as FastAPI dependencies: the gateway's parts, the services'
clients, the caller, the audit log, keyed requests; and JSON out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from pydantic import BaseModel
from starlette.responses import Response

from paymesh.gateway import domain, meters
from paymesh.gateway.admission import Admission
from paymesh.gateway.audit import Origin, record
from paymesh.gateway.clients import Client, calls_may_wait_until
from paymesh.gateway.errors import Forbidden, Unauthenticated
from paymesh.gateway.idempotency import KeyedRequest, check_key
from paymesh.gateway.limits import DEADLINE_KEY, enforce
from paymesh.gateway.ports import GatewayStore, TokenDeps
from paymesh.gateway.ratelimit import Policy, RateLimiter
from paymesh.gateway.requestlog import set_client_id
from paymesh.gateway.security import ResponseSealer, SecretHasher
from paymesh.gateway.service import ClientCache, KeyRing, VerifyToken, verify_token
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.text import check_params
from paymesh.platform.clock import Clock
from paymesh.platform.identity import Caller
from paymesh.platform.settings import PlatformSettings

if TYPE_CHECKING:
    from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsAsyncStub
    from paymesh.contracts.payments.v1.payments_pb2_grpc import PaymentsAsyncStub
    from paymesh.contracts.risk.v1.risk_pb2_grpc import RiskAsyncStub
    from paymesh.contracts.webhooks.v1.webhooks_pb2_grpc import WebhooksAsyncStub

__all__ = [
    "Accounts",
    "Audit",
    "Auditor",
    "Gateway",
    "IdempotencyKey",
    "Parts",
    "Payments",
    "Risk",
    "Webhooks",
    "authorize",
    "json_out",
    "keyed",
]

TOKEN_URL = "/v1/oauth/token"  # noqa: S105 - a path, not a secret

# An admitted request's service calls end this long before the request's own
# deadline, so that their answer (or their error) reaches the client, not a 504.
CALL_MARGIN_S = 1.0


@dataclass
class Gateway:
    """The parts the routes use, built once per app."""

    settings: PlatformSettings
    store: GatewayStore
    keys: KeyRing
    clients: ClientCache
    accounts: Client[AccountsAsyncStub]
    payments: Client[PaymentsAsyncStub]
    clock: Clock
    sealer: ResponseSealer
    limiter: RateLimiter
    # Failed client-credential attempts: the bucket shape, per address and per client id.
    auth_failures: Policy
    hasher: SecretHasher
    admission: Admission
    risk: Client[RiskAsyncStub]
    webhooks: Client[WebhooksAsyncStub]

    @cached_property
    def deps(self) -> TokenDeps:
        """What the use cases need, from these parts."""
        return TokenDeps(
            store=self.store,
            clock=self.clock,
            clients=self.clients,
            keys=self.keys,
            hasher=self.hasher,
            settings=self.settings.section(GatewaySettings),
        )


def gateway(request: Request) -> Gateway:
    """The gateway serving this request."""
    gw: Gateway = request.app.state.gateway
    return gw


# The dependencies are `async def`: FastAPI runs a plain `def` dependency on its thread
# pool, a thread hop per dependency per request (~12 % of the gateway's CPU, profiled).


async def _gateway(request: Request) -> Gateway:
    return gateway(request)


async def _accounts(request: Request) -> Client[AccountsAsyncStub]:
    return gateway(request).accounts


async def _payments(request: Request) -> Client[PaymentsAsyncStub]:
    return gateway(request).payments


async def _risk(request: Request) -> Client[RiskAsyncStub]:
    return gateway(request).risk


async def _webhooks(request: Request) -> Client[WebhooksAsyncStub]:
    return gateway(request).webhooks


# What a handler asks for by its parameter's type.
Parts = Annotated[Gateway, Depends(_gateway)]
if TYPE_CHECKING:
    Accounts = Annotated[Client[AccountsAsyncStub], Depends(_accounts)]
    Payments = Annotated[Client[PaymentsAsyncStub], Depends(_payments)]
    Risk = Annotated[Client[RiskAsyncStub], Depends(_risk)]
    Webhooks = Annotated[Client[WebhooksAsyncStub], Depends(_webhooks)]
else:  # the async stubs' types exist for type checkers only
    Accounts = Annotated[Client, Depends(_accounts)]
    Payments = Annotated[Client, Depends(_payments)]
    Risk = Annotated[Client, Depends(_risk)]
    Webhooks = Annotated[Client, Depends(_webhooks)]


oauth2 = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl=TOKEN_URL, scopes=dict(domain.ALL_SCOPES)
        )
    ),
    scheme_name="OAuth2",
    description="OAuth2 client credentials: POST /v1/oauth/token, then `Authorization: Bearer`.",
    auto_error=False,
)


async def authorize(
    security_scopes: SecurityScopes,
    request: Request,
    authorization: Annotated[str | None, Security(oauth2)] = None,
) -> Caller:
    """The caller a bearer token proves (401), within its rate limit (429), holding the scopes.

    Then the request's path and query strings must be storable text (422).
    """
    gw = gateway(request)
    source = request.client.host if request.client else "unknown"
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        meters.auth_failed("missing_token")
        raise Unauthenticated(
            "send an access token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    presented = VerifyToken(
        token.strip(),
        source=source,
        # Bad tokens are limited per address before they are audited.
        admit_failure=lambda: enforce(request, gw.limiter, f"authfail:{source}"),
    )
    caller = await verify_token(presented, deps=gw.deps)
    set_client_id(request.scope, caller.client_id)
    await enforce(request, gw.limiter, f"client:{caller.client_id}")
    missing = set(security_scopes.scopes) - caller.scopes
    if missing:
        needed = domain.format_scope(security_scopes.scopes)
        await record(
            gw.store, gw.clock, Origin(actor=caller.client_id, source=source), "access.denied",
            outcome="failure", tenant_id=caller.tenant_id,
            target=f"{request.method} {request.url.path}", details={"missing_scope": needed},
        )  # fmt: skip
        raise Forbidden(
            f"this operation needs scope {needed}",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        )
    check_params(request)
    return caller


@dataclass(frozen=True)
class Auditor:
    """The audit log as a route writes to it: what a caller changed, from where."""

    gw: Gateway
    source: str  # the client's address

    def origin(self, caller: Caller) -> Origin:
        """The audit origin of the request: the calling client and its address."""
        return Origin(actor=caller.client_id, source=self.source)

    async def __call__(
        self,
        caller: Caller,
        action: str,
        *,
        target: str,
        details: dict[str, object] | None = None,
    ) -> None:
        """Record what a caller changed through the API (never a secret)."""
        await record(
            self.gw.store,
            self.gw.clock,
            self.origin(caller),
            action,
            tenant_id=caller.tenant_id,
            target=target,
            details=details,
        )


async def _auditor(request: Request) -> Auditor:
    return Auditor(gateway(request), request.client.host if request.client else "unknown")


Audit = Annotated[Auditor, Depends(_auditor)]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "Makes the request safe to retry: the first response is replayed for the same "
            "key and body. Required on money-moving POSTs."
        ),
    ),
]


async def keyed(
    request: Request, caller: Caller, key: str | None, *, moves_money: bool
) -> KeyedRequest:
    """The request as idempotency sees it (the key is required on money-moving routes)."""
    gw = gateway(request)
    key = check_key(key, required=moves_money)
    return KeyedRequest(
        store=gw.store,
        clock=gw.clock,
        sealer=gw.sealer,
        ttl_s=gw.settings.section(GatewaySettings).idempotency_ttl_s,
        stale_after_s=max(60.0, 6 * gw.settings.rpc_deadline_s),
        tenant_id=caller.tenant_id,
        key=key,
        method=request.method,
        path=request.url.path,
        body=await request.body(),
        admit=(lambda: _admitted(request, gw.admission)) if moves_money else None,
    )


@asynccontextmanager
async def _admitted(request: Request, admission: Admission) -> AsyncIterator[None]:
    """A place among the money-moving requests at work; its service calls may then
    wait (in the services' queues) until shortly before the request's deadline."""
    async with admission.admit():
        deadline = request.scope.get("state", {}).get(DEADLINE_KEY)
        if deadline is None:
            yield
            return
        with calls_may_wait_until(deadline - CALL_MARGIN_S):
            yield


def json_out(
    model: BaseModel, status: int = 200, *, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response of `model` (bytes fixed now, so a replay is identical)."""
    return Response(
        model.model_dump_json().encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
