"""The console's users and sessions on the gateway's database (SQLite and PostgreSQL),
with a clock the test moves: timeouts, lockout, resets, disabling, password changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pyotp
import pytest

from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.audit import SYSTEM
from paymesh.gateway.console import totp
from paymesh.gateway.console.service import (
    REFUSED,
    ConsoleDeps,
    SignInRefused,
    change_password,
    create_user,
    current_session,
    reset_password,
    set_disabled,
    sign_in,
    token_id,
)
from paymesh.gateway.console.users import Role, SessionPolicy
from paymesh.gateway.errors import Conflict, NotFound, Unprocessable
from paymesh.gateway.security import ResponseSealer, SecretHasher
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock
from tests.integration.gateway.conftest import FAST_SCRYPT

NEW = "a brand new password"


@pytest.fixture
async def deps(db_url: str) -> AsyncIterator[ConsoleDeps]:
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    hasher = SecretHasher(threads=1, max_waiting=8)
    try:
        yield ConsoleDeps(
            store=SqlGatewayStore(db),
            clock=FixedClock(),
            hasher=hasher,
            policy=SessionPolicy(idle_s=60, max_s=600),
            lock_attempts=3,
            lock_s=120,
            scrypt=FAST_SCRYPT,
            sealer=ResponseSealer(b"a test key, not a production one"),
        )
    finally:
        hasher.close()
        await db.dispose()


def _clock(deps: ConsoleDeps) -> FixedClock:
    assert isinstance(deps.clock, FixedClock)
    return deps.clock


async def test_a_session_ends_when_idle_and_when_too_old(deps: ConsoleDeps) -> None:
    _, password = await create_user("Ann@Example.com", "viewer", None, origin=SYSTEM, deps=deps)
    signed = await sign_in(" ann@example.COM ", password, source="t", deps=deps)
    assert signed.user.must_change_password
    # The token is not stored: only its hash.
    assert await deps.store.console_session(signed.token) is None
    assert signed.session.id == token_id(signed.token)

    clock = _clock(deps)
    for _ in range(12):  # a request every 50 s keeps it alive ... for 600 s in all
        clock.advance(50)
        live = await current_session(signed.token, deps=deps)
        if live is None:
            break
    assert live is None
    assert clock.value - signed.session.created_at_us >= 600_000_000

    again = await sign_in("ann@example.com", password, source="t", deps=deps)
    clock.advance(61)  # idle
    assert await current_session(again.token, deps=deps) is None
    # And once ended it stays ended, whatever the clock does.
    assert await deps.store.console_session(again.session.id) is None


async def test_wrong_passwords_lock_sign_in_until_the_lock_passes(deps: ConsoleDeps) -> None:
    _, password = await create_user("bo@example.com", "support", None, origin=SYSTEM, deps=deps)
    for reason in ("wrong_password", "wrong_password", "locked_now"):
        with pytest.raises(SignInRefused) as refused:
            await sign_in("bo@example.com", "nope nope nope", source="t", deps=deps)
        assert refused.value.reason == reason
        assert str(refused.value) == REFUSED  # the same words, whatever the reason
    with pytest.raises(SignInRefused) as refused:
        await sign_in("bo@example.com", password, source="t", deps=deps)
    assert refused.value.reason == "locked"
    _clock(deps).advance(121)
    signed = await sign_in("bo@example.com", password, source="t", deps=deps)
    assert signed.user.failed_attempts == 0
    assert signed.user.locked_until_us is None


async def test_concurrent_wrong_passwords_all_count(deps: ConsoleDeps) -> None:
    _, password = await create_user("co@example.com", "viewer", None, origin=SYSTEM, deps=deps)
    outcomes = await asyncio.gather(
        *(sign_in("co@example.com", f"wrong guess {i}!", source="t", deps=deps) for i in range(6)),
        return_exceptions=True,
    )
    reasons = sorted(o.reason for o in outcomes if isinstance(o, SignInRefused))
    assert len(reasons) == 6
    # Three in a row lock; six concurrent guesses lock it (twice), none is lost.
    assert reasons.count("locked_now") == 2
    with pytest.raises(SignInRefused):
        await sign_in("co@example.com", password, source="t", deps=deps)


async def test_a_change_made_while_a_password_is_checked_wins(deps: ConsoleDeps) -> None:
    """A sign-in that checked the password before a disable, reset or lock committed
    does not undo it, nor open a session."""
    user, _ = await create_user("ra@example.com", "admin", None, origin=SYSTEM, deps=deps)
    now = _clock(deps).value
    await deps.store.update_console_user(user.id, disabled=True)
    assert await deps.store.record_sign_in(user.id, user.password_hash, now) is None
    await deps.store.update_console_user(user.id, disabled=False, password_hash="other")
    assert await deps.store.record_sign_in(user.id, user.password_hash, now) is None
    stored = await deps.store.console_user(user.id)
    assert stored is not None
    assert (stored.disabled, stored.password_hash) == (False, "other")
    await deps.store.update_console_user(user.id, locked_until_us=now + 1)
    assert await deps.store.record_sign_in(user.id, "other", now) is None
    assert await deps.store.record_sign_in(user.id, "other", now + 1) is not None


async def test_a_reset_ends_sessions_and_unlocks_with_a_new_one_time_password(
    deps: ConsoleDeps,
) -> None:
    _, first = await create_user("cy@example.com", "risk", None, origin=SYSTEM, deps=deps)
    signed = await sign_in("cy@example.com", first, source="t", deps=deps)
    for _ in range(3):
        with pytest.raises(SignInRefused):
            await sign_in("cy@example.com", "wrong wrong wrong", source="t", deps=deps)
    # The third wrong password locked it, and ended its sessions.
    assert await current_session(signed.token, deps=deps) is None
    second = await reset_password("cy@example.com", origin=SYSTEM, deps=deps)
    assert second != first
    assert await current_session(signed.token, deps=deps) is None
    with pytest.raises(SignInRefused):
        await sign_in("cy@example.com", first, source="t", deps=deps)
    again = await sign_in("cy@example.com", second, source="t", deps=deps)
    assert again.user.must_change_password


async def test_disabling_ends_sessions_and_refuses_sign_in(deps: ConsoleDeps) -> None:
    _, password = await create_user("di@example.com", "admin", None, origin=SYSTEM, deps=deps)
    signed = await sign_in("di@example.com", password, source="t", deps=deps)
    await set_disabled("di@example.com", True, origin=SYSTEM, deps=deps)
    assert await current_session(signed.token, deps=deps) is None
    with pytest.raises(SignInRefused) as refused:
        await sign_in("di@example.com", password, source="t", deps=deps)
    assert refused.value.reason == "disabled"
    await set_disabled("di@example.com", False, origin=SYSTEM, deps=deps)
    assert (
        await sign_in("di@example.com", password, source="t", deps=deps)
    ).user.role is Role.ADMIN


async def test_changing_the_password_keeps_this_session_and_ends_the_others(
    deps: ConsoleDeps,
) -> None:
    _, password = await create_user("ed@example.com", "viewer", None, origin=SYSTEM, deps=deps)
    here = await sign_in("ed@example.com", password, source="t", deps=deps)
    there = await sign_in("ed@example.com", password, source="t", deps=deps)
    changed = await change_password(here, password, NEW, source="t", deps=deps)
    assert not changed.must_change_password
    assert await current_session(here.token, deps=deps) is not None
    assert await current_session(there.token, deps=deps) is None
    with pytest.raises(SignInRefused):
        await sign_in("ed@example.com", password, source="t", deps=deps)
    assert not (
        await sign_in("ed@example.com", NEW, source="t", deps=deps)
    ).user.must_change_password


async def test_creating_a_user_checks_its_address_role_tenant_and_uniqueness(
    deps: ConsoleDeps,
) -> None:
    with pytest.raises(Unprocessable, match="e-mail"):
        await create_user("not-an-address", "viewer", None, origin=SYSTEM, deps=deps)
    with pytest.raises(Unprocessable, match="role"):
        await create_user("fi@example.com", "owner", None, origin=SYSTEM, deps=deps)
    with pytest.raises(NotFound):
        await create_user("fi@example.com", "viewer", "ten_nope", origin=SYSTEM, deps=deps)
    await create_user("fi@example.com", "viewer", None, origin=SYSTEM, deps=deps)
    with pytest.raises(Conflict):
        await create_user("FI@example.com", "admin", None, origin=SYSTEM, deps=deps)
    audit = await deps.store.audit_page(limit=10, action="console.user_created")
    assert [(e.target, e.details) for e in audit] == [("fi@example.com", {"role": "viewer"})]


def _code(secret: str, deps: ConsoleDeps, steps_ahead: int = 0) -> str:
    return str(pyotp.TOTP(secret).at(_clock(deps).value / 1e6 + 30 * steps_ahead))


async def test_a_second_factor_is_enrolled_then_asked_at_each_sign_in(
    deps: ConsoleDeps,
) -> None:
    _, password = await create_user("tf@example.com", "admin", None, origin=SYSTEM, deps=deps)
    signed = await sign_in("tf@example.com", password, source="t", deps=deps)
    assert signed.session.verified  # nothing enrolled: the password is enough
    secret, uri = await totp.start_enrollment(signed, deps=deps)
    assert uri.startswith("otpauth://totp/paymesh:tf%40example.com?secret=")
    live = await current_session(signed.token, deps=deps)
    assert live is not None
    assert live.session.totp_pending is not None
    assert secret not in live.session.totp_pending  # sealed, not in the clear
    with pytest.raises(Unprocessable):
        await totp.confirm_enrollment(live, "000000", source="t", deps=deps)
    await totp.confirm_enrollment(live, _code(secret, deps), source="t", deps=deps)
    stored = await deps.store.console_user(signed.user.id)
    assert stored is not None
    assert stored.totp_secret is not None
    assert secret not in stored.totp_secret

    again = await sign_in("tf@example.com", password, source="t", deps=deps)
    assert not again.session.verified
    current = await current_session(again.token, deps=deps)
    assert current is not None
    # The code of the step enrollment used is spent; a wrong one counts as a wrong password.
    with pytest.raises(Unprocessable):
        await totp.verify(current, _code(secret, deps), source="t", deps=deps)
    _clock(deps).advance(30)
    await totp.verify(current, _code(secret, deps), source="t", deps=deps)
    verified = await current_session(again.token, deps=deps)
    assert verified is not None
    assert verified.session.verified
    with pytest.raises(Unprocessable):  # the same code twice: never
        await totp.verify(current, _code(secret, deps), source="t", deps=deps)


async def test_wrong_codes_lock_and_a_reset_removes_the_second_factor(deps: ConsoleDeps) -> None:
    _, password = await create_user("tg@example.com", "risk", None, origin=SYSTEM, deps=deps)
    signed = await sign_in("tg@example.com", password, source="t", deps=deps)
    secret, _ = await totp.start_enrollment(signed, deps=deps)
    live = await current_session(signed.token, deps=deps)
    assert live is not None
    await totp.confirm_enrollment(live, _code(secret, deps), source="t", deps=deps)
    second = await sign_in("tg@example.com", password, source="t", deps=deps)
    for _ in range(3):  # lock_attempts=3 in this fixture
        with pytest.raises(Unprocessable):
            await totp.verify(second, "123456", source="t", deps=deps)
    assert await current_session(second.token, deps=deps) is None  # the lock ended it
    with pytest.raises(SignInRefused):
        await sign_in("tg@example.com", password, source="t", deps=deps)
    _clock(deps).advance(121)
    await totp.reset_totp("tg@example.com", origin=SYSTEM, deps=deps)
    after = await sign_in("tg@example.com", password, source="t", deps=deps)
    assert after.session.verified
    assert after.user.totp_secret is None


async def test_the_roles_that_require_a_second_factor_are_stored(deps: ConsoleDeps) -> None:
    assert await deps.store.totp_required_roles() == frozenset()
    await deps.store.set_totp_required("admin", True)
    await deps.store.set_totp_required("viewer", True)
    await deps.store.set_totp_required("viewer", False)
    assert await deps.store.totp_required_roles() == frozenset({"admin"})
