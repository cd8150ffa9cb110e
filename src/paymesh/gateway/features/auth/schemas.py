"""The request and response bodies of authentication and tenant administration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictInt

from paymesh.gateway import domain
from paymesh.gateway.schemas import ScopeName, _In, _Out
from paymesh.gateway.text import Text
from paymesh.platform.money import MAX_AMOUNT


class TokenOut(_Out):
    """An OAuth2 access token (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the token expires.")
    scope: str = Field(description="Space-separated scopes the token grants.")


class Fees(_In):
    """A tenant's fee per payment: a fixed part plus basis points of the amount."""

    fixed: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT)] = 0
    basis_points: Annotated[StrictInt, Field(ge=0, le=10_000)] = 0


class CreateTenantIn(_In):
    """Create a tenant."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "acme", "fees": {"fixed": 30, "basis_points": 290}}]
        }
    )
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    fees: Fees | None = None


class FeesOut(_Out):
    """A tenant's fee schedule."""

    fixed: int
    basis_points: int


class TenantOut(_Out):
    """A tenant."""

    id: str
    object: Literal["tenant"] = "tenant"
    name: str
    fees: FeesOut
    created: str


class CreateClientIn(_In):
    """Create an API client for a tenant."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"scopes": ["payments:read", "payments:write"]}]}
    )
    scopes: Annotated[list[ScopeName], Field(min_length=1, max_length=len(domain.ALL_SCOPES))]


class ClientCredentialsOut(_Out):
    """A new API client's credentials; the secret is shown only this once."""

    client_id: str
    client_secret: str
    tenant_id: str
    scopes: list[str]
