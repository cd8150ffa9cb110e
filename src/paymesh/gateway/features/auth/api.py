"""REST routes for authentication (tokens, JWKS) and tenant administration."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Form, Request
from starlette.responses import JSONResponse, Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway import meters
from paymesh.gateway.audit import Origin, record
from paymesh.gateway.deps import Audit, Parts, Payments, json_out
from paymesh.gateway.domain import ADMIN
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
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.limits import charge_failures, enforce
from paymesh.gateway.requestlog import set_client_id
from paymesh.gateway.routing import Routes
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

__all__ = ["routes"]

routes = Routes(tag="auth")


@routes.post(
    "/v1/oauth/token",
    scope=None,
    summary="Get an access token (client credentials)",
    response_model=TokenOut,
    problems=(400, 401),
)
async def token(
    request: Request,
    gw: Parts,
    grant_type: Annotated[Text | None, Form(examples=["client_credentials"])] = None,
    client_id: Annotated[Text | None, Form()] = None,
    client_secret: Annotated[Text | None, Form()] = None,
    scope: Annotated[Text | None, Form(description="Space-separated subset of the scopes")] = None,
) -> Response:
    """Exchange client credentials (form fields, or HTTP Basic) for a signed JWT.

    An Idempotency-Key is accepted and ignored: asking again just issues another token.
    """
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
        asked = IssueToken(client_id, client_secret, scope=scope, source=remote)
        issued = await issue_token(asked, deps=gw.deps)
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


@routes.get("/.well-known/jwks.json", scope=None, summary="The token signing keys (JWKS)")
async def jwks(gw: Parts) -> JSONResponse:
    """The public keys that verify access tokens, by kid."""
    keys = await gw.keys.jwks()
    return JSONResponse({"keys": keys}, headers={"Cache-Control": "public, max-age=300"})


@routes.post(
    "/v1/tenants",
    scope=ADMIN,
    tag="admin",
    summary="Create a tenant",
    status_code=201,
    response_model=TenantOut,
    problems=(400, 401, 403, 409, 422, 503),
)
async def post_tenant(
    body: CreateTenantIn,
    caller: Caller,
    keyed: KeyedRequest,
    gw: Parts,
    audit: Audit,
    payments: Payments,
) -> Response:
    """Create a tenant with its fee schedule (operators only).

    The fee schedule (`fixed` minor units + `basis_points` of each capture,
    charged to the payee) is stored by the payments service, which this
    call asks as the operator on the new tenant's behalf; without `fees`
    the tenant's payments are free. Fees are not returned on refunds.
    """
    fees = body.fees
    tenant = await create_tenant(
        CreateTenant(
            name=body.name,
            fee_fixed=fees.fixed if fees else 0,
            fee_basis_points=fees.basis_points if fees else 0,
            id=keyed.object_id("ten") if keyed.key else None,
        ),
        origin=audit.origin(caller),
        deps=gw.deps,
    )
    if fees is not None:  # without a schedule, payments charges nothing
        await payments.call(
            payments.stub.SetTenantFees,
            ppb.SetTenantFeesRequest(
                tenant_id=tenant.id,
                fixed=tenant.fee_fixed,
                basis_points=tenant.fee_basis_points,
            ),
            caller,
        )
    return json_out(tenant_view(tenant), 201)


@routes.post(
    "/v1/tenants/{tenant_id}/clients",
    scope=ADMIN,
    tag="admin",
    summary="Create an API client for a tenant",
    status_code=201,
    response_model=ClientCredentialsOut,
    problems=(400, 401, 403, 404, 409, 422),
)
async def post_client(
    tenant_id: str,
    body: CreateClientIn,
    caller: Caller,
    keyed: KeyedRequest,
    gw: Parts,
    audit: Audit,
) -> Response:
    """Create client credentials; the secret is shown in this answer only."""
    client, secret = await create_client(
        CreateClient(
            tenant_id=tenant_id,
            scopes=frozenset(body.scopes),
            client_id=keyed.object_id("cli") if keyed.key else None,
        ),
        origin=audit.origin(caller),
        deps=gw.deps,
    )
    out = ClientCredentialsOut(
        client_id=client.client_id,
        client_secret=secret,
        tenant_id=client.tenant_id,
        scopes=sorted(client.scopes),
    )
    return json_out(out, 201, headers={"Cache-Control": "no-store"})


@routes.delete(
    "/v1/tenants/{tenant_id}/clients/{client_id}",
    scope=ADMIN,
    tag="admin",
    summary="Revoke an API client",
    status_code=204,
    problems=(401, 403, 404),
)
async def delete_client(
    tenant_id: str, client_id: str, caller: Caller, gw: Parts, audit: Audit
) -> Response:
    """Revoke a client: no new tokens, and its tokens stop working."""
    await revoke_client(tenant_id, client_id, origin=audit.origin(caller), deps=gw.deps)
    return Response(status_code=204)
