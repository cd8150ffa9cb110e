"""The console's users and sessions, pure: roles and what each may do, passwords,
sign-in lockout and session timeouts.

No I/O, no clock, no randomness: callers pass the time and the random parts in.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from paymesh.gateway.domain import (
    ACCOUNTS_READ,
    ACCOUNTS_WRITE,
    ADMIN,
    PAYMENTS_READ,
    PAYMENTS_WRITE,
    RISK_ADMIN,
    WEBHOOKS_WRITE,
)

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ROLE_SCOPES",
    "ConsoleSession",
    "ConsoleUser",
    "InvalidEmail",
    "InvalidPassword",
    "Role",
    "SessionPolicy",
    "check_password",
    "normalise_email",
    "session_state",
]

MIN_PASSWORD_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")


class Role(enum.StrEnum):
    """What a console user may do."""

    VIEWER = "viewer"  # read
    SUPPORT = "support"  # read; capture, cancel, refund; resend webhooks
    RISK = "risk"  # read; reviews, block and allow lists, the rules in force
    ADMIN = "admin"  # everything: users, tenants, clients, keys too


_READ = frozenset({ACCOUNTS_READ, PAYMENTS_READ})
# The API scopes a role's requests carry to the services: the console reaches the data
# through the same authorisation as the REST API.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.VIEWER: _READ,
    Role.SUPPORT: _READ | {PAYMENTS_WRITE, WEBHOOKS_WRITE},
    Role.RISK: _READ | {RISK_ADMIN},
    Role.ADMIN: _READ | {ACCOUNTS_WRITE, PAYMENTS_WRITE, WEBHOOKS_WRITE, RISK_ADMIN, ADMIN},
}


class InvalidEmail(ValueError):
    """Not an e-mail address."""


class InvalidPassword(ValueError):
    """A new password the rules refuse (the message says why)."""


def normalise_email(email: str) -> str:
    """`email` as stored and looked up: trimmed, lower case; InvalidEmail if it is not one."""
    e = email.strip().lower()
    if len(e) > 254 or not _EMAIL.match(e):
        raise InvalidEmail(f"not an e-mail address: {email[:100]!r}")
    return e


def check_password(password: str, *, email: str) -> None:
    """InvalidPassword unless `password` is long enough and not the e-mail address."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidPassword(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InvalidPassword("a password has at most 1024 characters")
    if password.strip().lower() == email:
        raise InvalidPassword("a password is not the e-mail address")


@dataclass(frozen=True)
class ConsoleUser:
    """A person who signs in to the console (the password only as a hash).

    `tenant_id` None: a platform user, who chooses the tenant to work on.
    `must_change_password`: signed in with a one-time password, changes it first.
    """

    id: str
    email: str
    role: Role
    tenant_id: str | None
    password_hash: str
    must_change_password: bool
    disabled: bool
    failed_attempts: int
    locked_until_us: int | None
    created_at_us: int
    # The second factor (None: none enrolled): the TOTP secret, sealed, and the last
    # time step a code was accepted for.
    totp_secret: str | None = None
    totp_last_step: int | None = None

    @property
    def scopes(self) -> frozenset[str]:
        """The API scopes the user's requests carry."""
        return ROLE_SCOPES[self.role]

    def locked(self, now_us: int) -> bool:
        """Whether sign-in is refused for now after too many wrong passwords."""
        return self.locked_until_us is not None and now_us < self.locked_until_us


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in browser. `id` is the SHA-256 of the cookie's token (the token itself
    is never stored); `tenant_id` is the tenant the user works on (None: not chosen)."""

    id: str
    user_id: str
    tenant_id: str | None
    csrf_token: str
    created_at_us: int
    last_seen_at_us: int
    # False until the user's second factor is given (True when it has none).
    verified: bool = True
    # A TOTP secret this browser is enrolling, sealed.
    totp_pending: str | None = None


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: `idle_s` without a request, `max_s` in all."""

    idle_s: float
    max_s: float


def session_state(session: ConsoleSession, now_us: int, policy: SessionPolicy) -> str:
    """``live``, ``idle`` (no request for too long) or ``expired`` (too old)."""
    if now_us - session.created_at_us >= policy.max_s * 1e6:
        return "expired"
    if now_us - session.last_seen_at_us >= policy.idle_s * 1e6:
        return "idle"
    return "live"
