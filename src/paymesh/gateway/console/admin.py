"""The console's admin pages: tenants, their API clients (create with the secret shown
once, revoke), the console's users (create with a one-time password shown once,
disable, enable, reset), the token signing keys (rotate) and the second-factor policy.
Tenants, keys and the policy are a platform admin's (the ``admin`` role with no tenant);
an admin bound to a tenant manages that tenant's users and API clients. They run the
same use cases as the ``paymesh`` operator commands and the REST admin routes, audited
with the admin as actor."""

from __future__ import annotations

from starlette.responses import Response

from paymesh.gateway.audit import record
from paymesh.gateway.console import service as console
from paymesh.gateway.console.core import Console, View, iso
from paymesh.gateway.console.totp import reset_totp
from paymesh.gateway.console.users import Role
from paymesh.gateway.domain import ALL_SCOPES
from paymesh.gateway.keyring import key_states, rotate_signing_key
from paymesh.gateway.ports import Deps
from paymesh.gateway.service import CreateClient, CreateTenant, create_client, create_tenant
from paymesh.gateway.service import revoke_client as revoke
from paymesh.gateway.settings import GatewaySettings

__all__ = ["guard", "keys", "security", "tenant", "tenant_guard", "tenants", "users"]


def guard(c: Console, view: View) -> Response | None:
    """403 unless a platform admin (an admin bound to a tenant manages nothing global)."""
    if view.signed.user.role is not Role.ADMIN or view.signed.user.tenant_id is not None:
        return c.error(view.request, 403, "only a platform admin manages this", view)
    return None


def tenant_guard(c: Console, view: View, tenant_id: str | None) -> Response | None:
    """403 unless an admin who may manage `tenant_id`'s users and clients: a platform
    admin any tenant's (None: the platform users too), a tenant's admin its own."""
    user = view.signed.user
    if user.role is not Role.ADMIN:
        return c.error(view.request, 403, "only an admin manages this", view)
    if user.tenant_id is not None and tenant_id != user.tenant_id:
        return c.error(view.request, 403, "an admin of a tenant manages only its own", view)
    return None


def _deps(c: Console) -> Deps:
    gw = c.gw
    return Deps(store=gw.store, clock=gw.clock, clients=gw.clients)


async def tenants(c: Console, view: View) -> Response:
    """Every tenant (GET); a new one (POST ``name``)."""
    if (refused := guard(c, view)) is not None:
        return refused
    if view.form is not None:
        name = str(view.form.get("name", "")).strip()
        if not 1 <= len(name) <= 200:
            return c.error(view.request, 422, "a tenant's name has 1 to 200 characters", view)
        made = await create_tenant(CreateTenant(name=name), origin=view.origin, deps=_deps(c))
        return c.redirect(view.request, f"/admin/tenants/{made.id}", done="created")
    found = await c.deps.store.list_tenants()
    return c.render(view.request, "admin_tenants.html", view=view, tenants=found, iso=iso)


async def tenant(c: Console, view: View) -> Response:
    """A tenant's API clients (GET); a new client (POST ``op=create``, its secret shown
    once) or a revoked one (POST ``op=revoke``)."""
    request = view.request
    tenant_id = request.path_params["tenant_id"]
    if (refused := tenant_guard(c, view, tenant_id)) is not None:
        return refused
    found = await c.deps.store.get_tenant(tenant_id)
    if found is None:
        return c.error(request, 404, "no such tenant", view)
    if view.form is not None:
        if view.form.get("op") == "revoke":
            client_id = str(view.form.get("client_id", ""))[:64]
            await revoke(tenant_id, client_id, origin=view.origin, deps=_deps(c))
            return c.redirect(request, f"/admin/tenants/{tenant_id}", done="revoked")
        scopes = frozenset(str(s) for s in view.form.getlist("scopes"))
        asked = CreateClient(tenant_id=tenant_id, scopes=scopes)
        client, secret = await create_client(asked, origin=view.origin, deps=_deps(c))
        return c.render(
            request, "admin_secret.html", view=view, title="API client created",
            label=f"client_id {client.client_id}", secret=secret,
            back=f"/admin/tenants/{tenant_id}",
        )  # fmt: skip
    clients = await c.gw.store.list_clients(tenant_id)
    return c.render(
        request, "admin_tenant.html", view=view, t=found, clients=clients, iso=iso,
        scopes=sorted(ALL_SCOPES),
    )  # fmt: skip


async def users(c: Console, view: View) -> Response:
    """The console's users (GET); POST ``op`` = create (the one-time password shown once),
    disable, enable, reset (a new one-time password shown once) or reset_totp. A tenant's
    admin sees and manages its tenant's users only, and creates them in its tenant."""
    own = view.signed.user.tenant_id
    if (refused := tenant_guard(c, view, own)) is not None:
        return refused
    request, deps = view.request, c.deps
    if view.form is not None:
        op, email = view.form.get("op"), str(view.form.get("email", "")).strip()
        if op == "create":
            role = str(view.form.get("role", ""))
            tenant_id = own or str(view.form.get("tenant_id", "")).strip() or None
            user, password = await console.create_user(
                email, role, tenant_id, origin=view.origin, deps=deps
            )
            return c.render(
                request, "admin_secret.html", view=view, title="User created",
                label=f"one-time password of {user.email}", secret=password,
                back="/admin/users",
            )  # fmt: skip
        target = await console.find_user(email, deps)
        if (refused := tenant_guard(c, view, target.tenant_id)) is not None:
            return refused
        if op in ("disable", "enable"):
            await console.set_disabled(email, op == "disable", origin=view.origin, deps=deps)
            return c.redirect(request, "/admin/users", done=f"{op}d_user")
        if op == "reset_totp":
            await reset_totp(email, origin=view.origin, deps=deps)
            return c.redirect(request, "/admin/users", done="totp_reset")
        if op == "reset":
            password = await console.reset_password(email, origin=view.origin, deps=deps)
            return c.render(
                request, "admin_secret.html", view=view, title="Password reset",
                label=f"one-time password of {email}", secret=password, back="/admin/users",
            )  # fmt: skip
        return c.error(request, 422, "unknown operation", view)
    found = [u for u in await console.list_users(deps=deps) if own is None or u.tenant_id == own]
    tenants = await deps.store.list_tenants()
    return c.render(
        request, "admin_users.html", view=view, users=found, roles=[r.value for r in Role],
        tenants=[t for t in tenants if own is None or t.id == own], iso=iso,
    )  # fmt: skip


async def security(c: Console, view: View) -> Response:
    """Which roles must sign in with a second factor (GET); set them (POST ``roles``)."""
    if (refused := guard(c, view)) is not None:
        return refused
    store = c.deps.store
    if view.form is not None:
        wanted = {str(r) for r in view.form.getlist("roles")}
        for role in Role:
            await store.set_totp_required(role.value, role.value in wanted)
        c.forget_totp_roles()
        await record(
            store, c.deps.clock, view.origin, "console.totp_policy",
            details={"required": sorted(wanted & {r.value for r in Role})},
        )  # fmt: skip
        return c.redirect(view.request, "/admin/security", done="policy")
    return c.render(
        view.request, "admin_security.html", view=view, roles=[r.value for r in Role],
        required=await store.totp_required_roles(),
    )  # fmt: skip


async def keys(c: Console, view: View) -> Response:
    """The token signing keys and their states (GET); rotate (POST): running gateways
    switch to the new key within 30 s, the old one verifies while its tokens live."""
    if (refused := guard(c, view)) is not None:
        return refused
    gw = c.gw
    g = gw.settings.section(GatewaySettings)
    if view.form is not None:
        await rotate_signing_key(
            store=gw.store,
            passphrase=g.secret_key.get_secret_value().encode(),
            clock=gw.clock,
            origin=view.origin,
        )
        return c.redirect(view.request, "/admin/keys", done="rotated")
    states = key_states(
        await gw.store.signing_keys(), now_us=gw.clock.now_us(), token_ttl_s=g.token_ttl_s
    )
    return c.render(view.request, "admin_keys.html", view=view, keys=states, iso=iso)
