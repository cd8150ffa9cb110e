"""The accounts service's errors; per-item results are not errors (see domain.py).

::

    AccountsError                      code
    ├── InvalidRequest                 invalid_argument   (a malformed request)
    │   └── InvalidCursor              invalid_cursor     (starting_after names no entry or account)
    └── AccountNotFound                account_not_found  (unknown or another tenant's)
"""

from __future__ import annotations

__all__ = ["AccountNotFound", "AccountsError", "InvalidCursor", "InvalidRequest"]


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
