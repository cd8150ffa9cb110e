"""The console's pure rules: addresses, passwords, roles, lockout, session timeouts."""

from __future__ import annotations

import pytest

from paymesh.gateway.console.core import money
from paymesh.gateway.console.users import (
    ROLE_SCOPES,
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
from paymesh.gateway.domain import ADMIN, PAYMENTS_WRITE, RISK_ADMIN, WEBHOOKS_WRITE

_USER = ConsoleUser(
    id="usr_1",
    email="a@example.com",
    role=Role.SUPPORT,
    tenant_id=None,
    password_hash="x",
    must_change_password=False,
    disabled=False,
    failed_attempts=0,
    locked_until_us=None,
    created_at_us=0,
)


def test_addresses_are_trimmed_and_lower_cased_and_junk_is_refused() -> None:
    assert normalise_email("  Ann@Example.COM ") == "ann@example.com"
    for junk in ("", "ann", "ann@", "@example.com", "a b@example.com", "<x>@example.com"):
        with pytest.raises(InvalidEmail):
            normalise_email(junk)


def test_passwords_are_long_enough_and_not_the_address() -> None:
    check_password("twelve chars", email="a@example.com")
    with pytest.raises(InvalidPassword):
        check_password("eleven char", email="a@example.com")
    with pytest.raises(InvalidPassword):
        check_password("A@example.com", email="a@example.com")  # also too short
    with pytest.raises(InvalidPassword):
        check_password("a" * 1025, email="a@example.com")


def test_each_role_carries_what_it_may_do() -> None:
    assert PAYMENTS_WRITE not in ROLE_SCOPES[Role.VIEWER]
    assert {PAYMENTS_WRITE, WEBHOOKS_WRITE} <= ROLE_SCOPES[Role.SUPPORT]
    assert RISK_ADMIN not in ROLE_SCOPES[Role.SUPPORT]
    assert RISK_ADMIN in ROLE_SCOPES[Role.RISK]
    assert PAYMENTS_WRITE not in ROLE_SCOPES[Role.RISK]
    assert ADMIN in ROLE_SCOPES[Role.ADMIN]
    assert all(ADMIN not in ROLE_SCOPES[r] for r in Role if r is not Role.ADMIN)


def test_a_session_is_idle_or_expired_by_the_policy() -> None:
    s = ConsoleSession(
        id="h", user_id="usr_1", tenant_id=None, csrf_token="c", created_at_us=0, last_seen_at_us=0
    )
    policy = SessionPolicy(idle_s=10, max_s=100)
    assert session_state(s, 9_999_999, policy) == "live"
    assert session_state(s, 10_000_000, policy) == "idle"
    fresh = ConsoleSession(**{**s.__dict__, "last_seen_at_us": 99_000_000})
    assert session_state(fresh, 99_500_000, policy) == "live"
    assert session_state(fresh, 100_000_000, policy) == "expired"


def test_amounts_are_shown_in_the_currencys_units() -> None:
    assert money(123_456, "USD") == "1,234.56 USD"
    assert money(-5, "EUR") == "-0.05 EUR"
    assert money(1_500, "JPY") == "1,500 JPY"


def test_a_csv_cell_never_starts_a_formula() -> None:
    from paymesh.gateway.console.accounts import _cell

    assert _cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert _cell("+1") == "'+1"
    assert _cell("@sum") == "'@sum"
    assert _cell("pay_123") == "pay_123"
    assert _cell(-2500) == -2500  # amounts stay numbers
