"""The accounts service's errors; per-item results are not errors (see domain.py).

::

    AccountsError                      code
    ├── InvalidRequest                 invalid_argument   (a malformed request)
    │   └── InvalidCursor              invalid_cursor     (starting_after names no entry or account)
    ├── AccountNotFound                account_not_found  (unknown or another tenant's)
    └── AccountRefused                 the result's name  (open_account: invalid_currency,
                                                           exists_with_different_flags, ...)
"""

from __future__ import annotations

__all__ = [
    "AccountNotFound",
    "AccountRefused",
    "AccountsError",
    "InvalidCursor",
    "InvalidRequest",
]


class AccountsError(Exception):
    """The root of the accounts service's errors."""

    code = "accounts_error"


class InvalidRequest(AccountsError):
    """The request is malformed as a whole."""

    code = "invalid_argument"


class InvalidCursor(InvalidRequest):
    """`starting_after` names no entry of the account (or no account of the tenant)."""

    code = "invalid_cursor"


class AccountNotFound(AccountsError):
    """No such account for the caller's tenant."""

    code = "account_not_found"


class AccountRefused(AccountsError):
    """An account could not be opened: its result code says why, and whether the
    request was invalid (else it conflicts with the account that has the id)."""

    def __init__(self, result: str, *, invalid: bool) -> None:
        super().__init__(f"account refused: {result}")
        self.code = result
        self.invalid = invalid
