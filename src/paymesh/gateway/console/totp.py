"""The console's optional second factor: TOTP (RFC 6238: 6 digits, 30 s steps, pyotp),
enrolled by the user from the console, required for the roles an admin chooses.

- The secret is kept sealed (AES-GCM under the gateway's secret key, bound to the user),
  never in the clear; while it is being enrolled, sealed in the browser's session.
- A code is accepted for the current step or the one on either side, and never twice:
  the last accepted step is recorded in one guarded statement.
- A wrong code counts as a wrong password: enough of them lock the user and end its
  sessions.
"""

from __future__ import annotations

import base64
import hmac

import pyotp

from paymesh.gateway.audit import Origin, record
from paymesh.gateway.console.service import ConsoleDeps, SignedIn, find_user
from paymesh.gateway.console.users import ConsoleUser
from paymesh.gateway.errors import Unprocessable
from paymesh.gateway.security import ResponseSealer

__all__ = [
    "STEP_S",
    "confirm_enrollment",
    "matching_step",
    "pending",
    "required",
    "reset_totp",
    "start_enrollment",
    "verify",
]

STEP_S = 30
ISSUER = "paymesh"


def _sealer(deps: ConsoleDeps) -> ResponseSealer:
    if deps.sealer is None:
        raise Unprocessable("no second factor on this gateway", code="totp_unavailable")
    return deps.sealer


def _seal(deps: ConsoleDeps, context: str, secret: str) -> str:
    sealed = _sealer(deps).seal(secret.encode(), context=f"console-totp:{context}")
    return base64.b64encode(sealed).decode()


def _open(deps: ConsoleDeps, context: str, sealed: str) -> str:
    raw = base64.b64decode(sealed)
    return _sealer(deps).open(raw, context=f"console-totp:{context}").decode()


def matching_step(secret: str, code: str, now_s: float) -> int | None:
    """The time step whose code `code` is (this step, the one before or after), or None."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    for offset in (0, -1, 1):
        at = now_s + offset * STEP_S
        if hmac.compare_digest(totp.at(at), code):
            return int(at // STEP_S)
    return None


async def required(user: ConsoleUser, deps: ConsoleDeps) -> bool:
    """Whether the user's role must sign in with a second factor."""
    return user.role.value in await deps.store.totp_required_roles()


async def start_enrollment(signed: SignedIn, *, deps: ConsoleDeps) -> tuple[str, str]:
    """A new secret for the user to add to an authenticator app (kept, sealed, in this
    session until a code confirms it): the secret and its otpauth:// URI."""
    secret = pyotp.random_base32()
    sealed = _seal(deps, f"session:{signed.session.id}", secret)
    await deps.store.update_console_session(signed.session.id, totp_pending=sealed)
    uri = pyotp.TOTP(secret).provisioning_uri(name=signed.user.email, issuer_name=ISSUER)
    return secret, uri


def pending(signed: SignedIn, *, deps: ConsoleDeps) -> tuple[str, str] | None:
    """The secret this session is enrolling and its URI, or None."""
    if signed.session.totp_pending is None:
        return None
    secret = _open(deps, f"session:{signed.session.id}", signed.session.totp_pending)
    uri = pyotp.TOTP(secret).provisioning_uri(name=signed.user.email, issuer_name=ISSUER)
    return secret, uri


async def confirm_enrollment(
    signed: SignedIn, code: str, *, source: str, deps: ConsoleDeps
) -> None:
    """Make the secret being enrolled the user's second factor, once a code from it is
    right; this session counts as having given it."""
    session, user = signed.session, signed.user
    if session.totp_pending is None:
        raise Unprocessable("start the enrollment again", code="totp_not_started")
    secret = _open(deps, f"session:{session.id}", session.totp_pending)
    step = matching_step(secret, code, deps.clock.now_us() / 1e6)
    if step is None:
        raise Unprocessable("that code is not right: try the current one", code="wrong_code")
    await deps.store.update_console_user(
        user.id, totp_secret=_seal(deps, f"user:{user.id}", secret), totp_last_step=step
    )
    await deps.store.update_console_session(session.id, totp_pending=None, verified=True)
    await record(
        deps.store, deps.clock, Origin(actor=f"console:{user.email}", source=source),
        "console.totp_enrolled", tenant_id=user.tenant_id, target=user.email,
    )  # fmt: skip


async def verify(signed: SignedIn, code: str, *, source: str, deps: ConsoleDeps) -> None:
    """Pass the second factor for this session with a code (Unprocessable: wrong, or
    used already). A wrong code counts as a wrong password."""
    user, now = signed.user, deps.clock.now_us()
    origin = Origin(actor=f"console:{user.email}", source=source)
    if user.totp_secret is None:
        raise Unprocessable("no second factor is enrolled", code="totp_not_enrolled")
    secret = _open(deps, f"user:{user.id}", user.totp_secret)
    step = matching_step(secret, code, now / 1e6)
    if step is None or not await deps.store.accept_totp_step(user.id, step):
        locked = await deps.store.count_wrong_password(
            user.id, attempts=deps.lock_attempts, lock_until_us=now + int(deps.lock_s * 1e6)
        )
        await record(
            deps.store, deps.clock, origin, "console.second_factor", outcome="failure",
            tenant_id=user.tenant_id, target=user.email,
            details={"reason": "locked_now" if locked else "wrong_code"},
        )  # fmt: skip
        raise Unprocessable("that code is not right, or was used already", code="wrong_code")
    await deps.store.update_console_session(signed.session.id, verified=True)
    await record(
        deps.store, deps.clock, origin, "console.second_factor",
        tenant_id=user.tenant_id, target=user.email,
    )  # fmt: skip


async def reset_totp(email: str, *, origin: Origin, deps: ConsoleDeps) -> None:
    """Remove a user's second factor (a lost authenticator): its sessions end; it enrolls
    again at its next sign-in if its role requires one."""
    user = await find_user(email, deps)
    await deps.store.update_console_user(
        user.id, end_sessions=True, totp_secret=None, totp_last_step=None
    )
    await record(
        deps.store, deps.clock, origin, "console.totp_reset",
        tenant_id=user.tenant_id, target=user.email,
    )  # fmt: skip
