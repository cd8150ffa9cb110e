"""The pure check of the accounts a command names."""

from __future__ import annotations

import pytest

from paymesh.payments.domain import check_accounts
from paymesh.payments.errors import AccountNotFound, CurrencyMismatch

NAMED = {"from_account_id": "acct_a", "to_account_id": "acct_b"}


def test_accounts_of_the_tenant_in_the_requests_currency_pass() -> None:
    check_accounts(NAMED, "USD", {"acct_a": "USD", "acct_b": "USD"})


def test_a_missing_account_is_named_by_its_field_never_by_its_id() -> None:
    with pytest.raises(AccountNotFound) as refused:
        check_accounts(NAMED, "USD", {"acct_a": "USD"})
    assert str(refused.value) == "no such account: to_account_id"
    assert refused.value.code == "account_not_found"


def test_a_missing_account_outranks_a_currency_mismatch_and_all_missing_are_named() -> None:
    with pytest.raises(AccountNotFound) as refused:
        check_accounts({**NAMED, "payee_account_id": "acct_c"}, "USD", {"acct_b": "EUR"})
    assert str(refused.value) == "no such account: from_account_id, payee_account_id"


def test_an_account_in_another_currency_names_both_currencies() -> None:
    with pytest.raises(CurrencyMismatch) as refused:
        check_accounts(NAMED, "USD", {"acct_a": "USD", "acct_b": "JPY"})
    assert str(refused.value) == "to_account_id: the account holds JPY, the request is in USD"
    assert refused.value.code == "currency_mismatch"
