"""The console's use cases: users (created by an operator with a one-time password),
signing in and out, sessions, changing a password and choosing a tenant.

Every change and every sign-in attempt is in the audit log, with the user as actor
(``console:<email>``) or the operator who ran the command.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace

from paymesh.gateway.audit import SYSTEM, Origin, record
from paymesh.gateway.console.users import (
    ConsoleSession,
    ConsoleUser,
    InvalidEmail,
    InvalidPassword,
    Role,
    SessionPolicy,
    check_password,
    normalise_email,
    session_state,
)
from paymesh.gateway.domain import Tenant
from paymesh.gateway.errors import Conflict, NotFound, Unprocessable
from paymesh.gateway.ports import ConsoleStore
from paymesh.gateway.security import ResponseSealer, ScryptParams, SecretHasher
from paymesh.platform.clock import Clock, new_id

__all__ = [
    "REFUSED",
    "ConsoleDeps",
    "SignInRefused",
    "SignedIn",
    "change_password",
    "choose_tenant",
    "create_demo_admin",
    "create_user",
    "current_session",
    "find_user",
    "list_users",
    "reset_password",
    "set_disabled",
    "sign_in",
    "sign_out",
    "token_id",
]

# last_seen is written at most this often per session (a read per request, not a write).
_TOUCH_EVERY_US = 30_000_000


@dataclass(frozen=True)
class ConsoleDeps:
    """What the console's use cases need.

    `lock_attempts` wrong passwords in a row lock a user's sign-in for `lock_s`;
    `scrypt`: the cost of new password hashes (None: the production cost).
    """

    store: ConsoleStore
    clock: Clock
    hasher: SecretHasher
    policy: SessionPolicy
    lock_attempts: int = 5
    lock_s: float = 900.0
    scrypt: ScryptParams | None = None
    # Seals the second factor's secrets (None: no second factor on this gateway).
    sealer: ResponseSealer | None = None


class SignInRefused(Exception):
    """Sign-in refused (the message is the same whatever the reason; `reason`, for the
    audit log and tests: unknown_user, disabled, locked, wrong_password, locked_now,
    changed_meanwhile)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SignedIn:
    """A session and the user it is for; `token` is the cookie's value (only on sign-in)."""

    user: ConsoleUser
    session: ConsoleSession
    token: str = ""


def token_id(token: str) -> str:
    """The stored id of a session token: its SHA-256 (a database leak yields no session)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _one_time_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def _actor(user: ConsoleUser) -> str:
    return f"console:{user.email}"


async def find_user(email: str, deps: ConsoleDeps) -> ConsoleUser:
    """The user with this e-mail address (422 not one, 404 none)."""
    try:
        found = await deps.store.console_user_by_email(normalise_email(email))
    except InvalidEmail as exc:
        raise Unprocessable(str(exc), code="invalid_email") from exc
    if found is None:
        raise NotFound(f"no console user {email[:254]!r}", code="user_not_found")
    return found


async def create_user(
    email: str, role: str, tenant_id: str | None, *, origin: Origin, deps: ConsoleDeps
) -> tuple[ConsoleUser, str]:
    """A new user of `role` (bound to `tenant_id`, or a platform user) and its one-time
    password, to change at first sign-in."""
    try:
        address = normalise_email(email)
        user_role = Role(role)
    except InvalidEmail as exc:
        raise Unprocessable(str(exc), code="invalid_email") from exc
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise Unprocessable(
            f"unknown role {role[:40]!r}: one of {roles}", code="invalid_role"
        ) from exc
    if tenant_id is not None and await deps.store.get_tenant(tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id[:64]!r}", code="tenant_not_found")
    password = _one_time_password()
    user = ConsoleUser(
        id=new_id("usr"),
        email=address,
        role=user_role,
        tenant_id=tenant_id,
        password_hash=await deps.hasher.hash(password, deps.scrypt),
        must_change_password=True,
        disabled=False,
        failed_attempts=0,
        locked_until_us=None,
        created_at_us=deps.clock.now_us(),
    )
    if not await deps.store.add_console_user(user):
        raise Conflict(f"a console user {address!r} exists", code="user_exists")
    details: dict[str, object] = {"role": user_role.value}
    await record(
        deps.store,
        deps.clock,
        origin,
        "console.user_created",
        tenant_id=tenant_id,
        target=address,
        details=details,
    )
    return user, password


async def list_users(*, deps: ConsoleDeps) -> list[ConsoleUser]:
    """Every console user, by e-mail address."""
    return await deps.store.list_console_users()


async def set_disabled(
    email: str, disabled: bool, *, origin: Origin, deps: ConsoleDeps
) -> ConsoleUser:
    """Disable a user (its sessions end at once) or enable it again."""
    user = await find_user(email, deps)
    await deps.store.update_console_user(user.id, end_sessions=disabled, disabled=disabled)
    action = "console.user_disabled" if disabled else "console.user_enabled"
    await record(
        deps.store,
        deps.clock,
        origin,
        action,
        tenant_id=user.tenant_id,
        target=user.email,
    )
    return replace(user, disabled=disabled)


async def reset_password(email: str, *, origin: Origin, deps: ConsoleDeps) -> str:
    """A new one-time password for a user (unlocked, its sessions ended)."""
    password = _one_time_password()
    user = await find_user(email, deps)
    await deps.store.update_console_user(
        user.id,
        end_sessions=True,
        password_hash=await deps.hasher.hash(password, deps.scrypt),
        must_change_password=True,
        failed_attempts=0,
        locked_until_us=None,
    )
    await record(
        deps.store,
        deps.clock,
        origin,
        "console.password_reset",
        tenant_id=user.tenant_id,
        target=user.email,
    )
    return password


REFUSED = "wrong e-mail address or password, or too many attempts: try again later"


async def sign_in(email: str, password: str, *, source: str, deps: ConsoleDeps) -> SignedIn:
    """A new session for the user whose e-mail address and password these are, or
    SignInRefused: the same answer, at the same cost (a hash), for an unknown user, a
    disabled one, a locked one and a wrong password. Every attempt is audited with its
    reason. A wrong password counts against the user in one statement, so concurrent
    guesses all count; the `lock_attempts`-th in a row locks sign-in for `lock_s`."""
    try:
        address = normalise_email(email)
    except InvalidEmail:
        address = ""
    user = await deps.store.console_user_by_email(address) if address else None
    origin = Origin(actor=f"console:{address or '?'}", source=source)
    now = deps.clock.now_us()

    async def refuse(reason: str) -> SignInRefused:
        await record(
            deps.store,
            deps.clock,
            origin,
            "console.sign_in",
            outcome="failure",
            tenant_id=user.tenant_id if user else None,
            target=address or None,
            details={"reason": reason},
        )
        return SignInRefused(REFUSED, reason=reason)

    if user is None or user.disabled or user.locked(now):
        await deps.hasher.verify(password, None)  # the same cost as a wrong password
        reason = "unknown_user" if user is None else "disabled" if user.disabled else "locked"
        raise await refuse(reason)
    if not await deps.hasher.verify(password, user.password_hash):
        locked = await deps.store.count_wrong_password(
            user.id, attempts=deps.lock_attempts, lock_until_us=now + int(deps.lock_s * 1e6)
        )
        raise await refuse("locked_now" if locked else "wrong_password")
    fresh = await deps.store.record_sign_in(user.id, user.password_hash, now)
    if fresh is None:  # disabled, locked or reset while its password was being checked
        raise await refuse("changed_meanwhile")
    token = secrets.token_urlsafe(32)
    session = ConsoleSession(
        id=token_id(token),
        user_id=fresh.id,
        tenant_id=fresh.tenant_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at_us=now,
        last_seen_at_us=now,
        verified=fresh.totp_secret is None,  # else: the second factor comes next
    )
    await deps.store.add_console_session(session)
    await record(
        deps.store,
        deps.clock,
        origin,
        "console.sign_in",
        tenant_id=fresh.tenant_id,
        target=fresh.email,
    )
    return SignedIn(user=fresh, session=session, token=token)


async def current_session(token: str, *, deps: ConsoleDeps) -> SignedIn | None:
    """The live session of a cookie's token (None: none, ended, idle or expired, or its
    user disabled). Its last request time is updated."""
    if not token or len(token) > 200:
        return None
    session = await deps.store.console_session(token_id(token))
    if session is None:
        return None
    now = deps.clock.now_us()
    user = await deps.store.console_user(session.user_id)
    if user is None or user.disabled or session_state(session, now, deps.policy) != "live":
        await deps.store.delete_console_session(session.id)
        return None
    if now - session.last_seen_at_us >= _TOUCH_EVERY_US:
        await deps.store.update_console_session(session.id, last_seen_at_us=now)
        session = replace(session, last_seen_at_us=now)
    return SignedIn(user=user, session=session)


async def sign_out(signed: SignedIn, *, source: str, deps: ConsoleDeps) -> None:
    """End the session."""
    await deps.store.delete_console_session(signed.session.id)
    await record(
        deps.store,
        deps.clock,
        Origin(actor=_actor(signed.user), source=source),
        "console.sign_out",
        tenant_id=signed.session.tenant_id,
        target=signed.user.email,
    )


async def change_password(
    signed: SignedIn, current: str, new: str, *, source: str, deps: ConsoleDeps
) -> ConsoleUser:
    """Change the signed-in user's password (Unprocessable: the current one is wrong, or
    the new one breaks a rule). A wrong current password counts as a wrong sign-in: enough
    of them lock the user and end its sessions, this one too. Its other sessions end."""
    user = signed.user
    origin = Origin(actor=_actor(user), source=source)
    if not await deps.hasher.verify(current, user.password_hash):
        now = deps.clock.now_us()
        locked = await deps.store.count_wrong_password(
            user.id, attempts=deps.lock_attempts, lock_until_us=now + int(deps.lock_s * 1e6)
        )
        await record(
            deps.store, deps.clock, origin, "console.password_changed", outcome="failure",
            tenant_id=user.tenant_id, target=user.email,
            details={"reason": "locked_now" if locked else "wrong_password"},
        )  # fmt: skip
        raise Unprocessable("the current password is wrong", code="wrong_password")
    if new == current:
        raise Unprocessable("the new password is the current one", code="invalid_password")
    try:
        check_password(new, email=user.email)
    except InvalidPassword as exc:
        raise Unprocessable(str(exc), code="invalid_password") from exc
    new_hash = await deps.hasher.hash(new, deps.scrypt)
    changed = await deps.store.update_console_user(
        user.id,
        expect={"password_hash": user.password_hash, "disabled": False},
        end_sessions=True,
        password_hash=new_hash,
        must_change_password=False,
    )
    if not changed:
        raise Conflict("the account changed meanwhile: sign in again", code="user_changed")
    await deps.store.add_console_session(signed.session)  # this browser stays signed in
    await record(
        deps.store,
        deps.clock,
        origin,
        "console.password_changed",
        tenant_id=user.tenant_id,
        target=user.email,
    )
    return replace(user, password_hash=new_hash, must_change_password=False)


async def choose_tenant(
    signed: SignedIn, tenant_id: str, *, source: str, deps: ConsoleDeps
) -> Tenant:
    """Make `tenant_id` the tenant a platform user's session works on (a tenant user
    has its own and cannot choose)."""
    if signed.user.tenant_id is not None:
        raise NotFound(f"no tenant {tenant_id[:64]!r}", code="tenant_not_found")
    tenant = await deps.store.get_tenant(tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id[:64]!r}", code="tenant_not_found")
    await deps.store.update_console_session(signed.session.id, tenant_id=tenant.id)
    await record(
        deps.store,
        deps.clock,
        Origin(actor=_actor(signed.user), source=source),
        "console.tenant_chosen",
        tenant_id=tenant.id,
        target=signed.user.email,
    )
    return tenant


async def create_demo_admin(email: str, *, deps: ConsoleDeps) -> str | None:
    """On the demo platform's first start: a platform admin whose password is not
    one-time (a newcomer signs in and works at once); its password, or None when a user
    with that address exists."""
    if await deps.store.console_user_by_email(normalise_email(email)) is not None:
        return None
    user, password = await create_user(email, Role.ADMIN.value, None, origin=SYSTEM, deps=deps)
    await deps.store.update_console_user(user.id, must_change_password=False)
    return password
