"""REST routes for authentication (tokens, JWKS) and tenant administration."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway import meters
from paymesh.gateway.audit import Origin, record
from paymesh.gateway.deps import IdempotencyKey, gateway, json_out, keyed, scoped
from paymesh.gateway.errors import (
    BadRequest,
    Unauthenticated,
)
from paymesh.gateway.features.auth.schemas import (
    ClientCredentialsOut,
    CreateClientIn,
    CreateTenantIn,
    TenantOut,
    TokenOut,
)
from paymesh.gateway.features.auth.views import tenant_view
from paymesh.gateway.limits import charge_failures, enforce
from paymesh.gateway.problems import problem_responses
from paymesh.gateway.requestlog import set_client_id
from paymesh.gateway.service import (
    CreateClient,
    CreateTenant,
    IssueToken,
    create_client,
    create_tenant,
    issue_token,
    revoke_client,
)
from paymesh.gateway.text import Text, is_storable
from paymesh.platform.identity import Caller

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/oauth/token",
    tags=["auth"],
    summary="Get an access token (client credentials)",
    response_model=TokenOut,
    responses=problem_responses(400, 401),
)
async def token(
    request: Request,
    grant_type: Annotated[Text | None, Form(examples=["client_credentials"])] = None,
    client_id: Annotated[Text | None, Form()] = None,
    client_secret: Annotated[Text | None, Form()] = None,
    scope: Annotated[Text | None, Form(description="Space-separated subset of the scopes")] = None,
) -> Response:
    """Exchange client credentials (form fields, or HTTP Basic) for a signed JWT.

    An Idempotency-Key is accepted and ignored: asking again just issues another token.
    """
    gw = gateway(request)
    basic = _basic_credentials(request.headers.get("authorization"))
    if basic is not None:
        client_id, client_secret = basic
    # Requests are limited per client id; without one, per remote address.
    remote = request.client.host if request.client else "unknown"
    await enforce(request, gw.limiter, f"token:{client_id}" if client_id else f"addr:{remote}")
    if grant_type != "client_credentials":
        raise BadRequest("grant_type must be client_credentials", code="unsupported_grant_type")
    # Failed attempts are limited per address and per client id, charged before the
    # secret is hashed: a flood of guesses is refused before it costs a hash.
    failures = [f"credfail:addr:{remote}"]
    if client_id:
        failures.append(f"credfail:client:{client_id}")
    async with charge_failures(request, gw.limiter, gw.auth_failures, failures):
        if not client_id or not client_secret:
            await record(
                gw.store, gw.clock, Origin(actor=client_id or "anonymous", source=remote),
                "auth.failed", outcome="failure", target=client_id or None,
                details={"reason": "missing credentials", "credential": "client_secret"},
            )  # fmt: skip
            meters.auth_failed("invalid_client")
            raise Unauthenticated(
                "send client_id and client_secret", code="invalid_client",
                headers={"WWW-Authenticate": 'Basic realm="paymesh"'},
            )  # fmt: skip
        issued = await issue_token(
            IssueToken(client_id=client_id, client_secret=client_secret, scope=scope),
            store=gw.store,
            keys=gw.keys,
            settings=gw.settings.gateway,
            clock=gw.clock,
            hasher=gw.hasher,
            source=remote,
        )
    set_client_id(request.scope, client_id)
    out = TokenOut(
        access_token=issued.access_token, expires_in=issued.expires_in, scope=issued.scope
    )
    return json_out(out, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        meters.auth_failed("invalid_client")
        raise Unauthenticated("malformed Basic credentials", code="invalid_client") from exc
    if not sep or not (is_storable(client_id) and is_storable(secret)):
        meters.auth_failed("invalid_client")
        raise Unauthenticated("malformed Basic credentials", code="invalid_client")
    return client_id, secret


@router.get("/.well-known/jwks.json", tags=["auth"], summary="The token signing keys (JWKS)")
async def jwks(request: Request) -> JSONResponse:
    """The public keys that verify access tokens, by kid."""
    keys = await gateway(request).keys.jwks()
    return JSONResponse({"keys": keys}, headers={"Cache-Control": "public, max-age=300"})


@router.post(
    "/v1/tenants",
    tags=["admin"],
    summary="Create a tenant",
    status_code=201,
    response_model=TenantOut,
    responses=problem_responses(400, 401, 403, 409, 422, 503),
)
async def post_tenant(
    body: CreateTenantIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/tenants"),
) -> Response:
    """Create a tenant with its fee schedule (operators only).

    The fee schedule (`fixed` minor units + `basis_points` of each capture,
    charged to the payee) is stored by the payments service, which this
    call asks as the operator on the new tenant's behalf; without `fees`
    the tenant's payments are free. Fees are not returned on refunds.
    """
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        fees = body.fees
        tenant = await create_tenant(
            CreateTenant(
                name=body.name,
                fee_fixed=fees.fixed if fees else 0,
                fee_basis_points=fees.basis_points if fees else 0,
                id=req.object_id("ten") if req.key else None,
            ),
            store=gw.store,
            clock=gw.clock,
            origin=_origin(request, caller),
        )
        if fees is not None:  # without a schedule, payments charges nothing
            await gw.payments.set_tenant_fees(
                ppb.SetTenantFeesRequest(
                    tenant_id=tenant.id,
                    fixed=tenant.fee_fixed,
                    basis_points=tenant.fee_basis_points,
                ),
                caller=caller,
            )
        return json_out(tenant_view(tenant), 201)

    return await req.run(run)


@router.post(
    "/v1/tenants/{tenant_id}/clients",
    tags=["admin"],
    summary="Create an API client for a tenant",
    status_code=201,
    response_model=ClientCredentialsOut,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def post_client(
    tenant_id: str,
    body: CreateClientIn,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    caller: Caller = scoped("POST", "/v1/tenants/{tenant_id}/clients"),
) -> Response:
    """Create client credentials; the secret is shown in this answer only."""
    gw = gateway(request)
    req = await keyed(request, caller, idempotency_key)

    async def run() -> Response:
        client, secret = await create_client(
            CreateClient(
                tenant_id=tenant_id,
                scopes=frozenset(body.scopes),
                client_id=req.object_id("cli") if req.key else None,
            ),
            store=gw.store,
            clock=gw.clock,
            origin=_origin(request, caller),
        )
        out = ClientCredentialsOut(
            client_id=client.client_id,
            client_secret=secret,
            tenant_id=client.tenant_id,
            scopes=sorted(client.scopes),
        )
        return json_out(out, 201, headers={"Cache-Control": "no-store"})

    return await req.run(run)


@router.delete(
    "/v1/tenants/{tenant_id}/clients/{client_id}",
    tags=["admin"],
    summary="Revoke an API client",
    status_code=204,
    responses=problem_responses(401, 403, 404),
)
async def delete_client(
    tenant_id: str,
    client_id: str,
    request: Request,
    caller: Caller = scoped("DELETE", "/v1/tenants/{tenant_id}/clients/{client_id}"),
) -> Response:
    """Revoke a client: no new tokens, and its tokens stop working."""
    gw = gateway(request)
    await revoke_client(
        tenant_id,
        client_id,
        store=gw.store,
        clients=gw.clients,
        clock=gw.clock,
        origin=_origin(request, caller),
    )
    return Response(status_code=204)


def _origin(request: Request, caller: Caller) -> Origin:
    """The audit origin of an API request: the calling client and its address."""
    return Origin(
        actor=caller.client_id, source=request.client.host if request.client else "unknown"
    )
