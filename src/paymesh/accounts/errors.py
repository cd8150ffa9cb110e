"""The accounts service's errors; per-item results are not errors (see domain.py).

::

    AccountsError                      code               gRPC status
    ├── InvalidRequest                 invalid_argument   INVALID_ARGUMENT (a malformed request)
    │   ├── InvalidCursor              invalid_cursor     INVALID_ARGUMENT (starting_after names
    │   │                                                 no entry or account)
    │   └── InvalidBankAccount         invalid_bank_account  INVALID_ARGUMENT (the message names
    │                                                     the field: bank_account.iban, ...)
    ├── AccountNotFound                account_not_found  NOT_FOUND (unknown or another tenant's)
    └── AccountRefused                 the result's name  INVALID_ARGUMENT or FAILED_PRECONDITION
                                                          (open_account: invalid_currency,
                                                          exists_with_different_flags, ...)
"""

from __future__ import annotations

from paymesh.platform.errors import ServiceError, Status

__all__ = [
    "AccountNotFound",
    "AccountRefused",
    "AccountsError",
    "InvalidBankAccount",
    "InvalidCursor",
    "InvalidRequest",
]


class AccountsError(ServiceError):
    """The root of the accounts service's errors."""

    code = "accounts_error"


class InvalidRequest(AccountsError):
    """The request is malformed as a whole."""

    code = "invalid_argument"
    status = "INVALID_ARGUMENT"


class InvalidCursor(InvalidRequest):
    """`starting_after` names no entry of the account (or no account of the tenant)."""

    code = "invalid_cursor"


class InvalidBankAccount(InvalidRequest):
    """A bank detail is invalid (the IBAN, the BIC, or the holder's name)."""

    code = "invalid_bank_account"


class AccountNotFound(AccountsError):
    """No such account for the caller's tenant."""

    code = "account_not_found"
    status = "NOT_FOUND"

    @property
    def message(self) -> str:
        """The same words whichever account was asked for."""
        return "no such account"


class AccountRefused(AccountsError):
    """An account could not be opened: its result code says why, and whether the
    request was invalid (else it conflicts with the account that has the id)."""

    status = "FAILED_PRECONDITION"

    def __init__(self, result: str, *, invalid: bool) -> None:
        super().__init__(f"account refused: {result}")
        # The code is the refusing result's name, so it is set per instance.
        self.code = result  # type: ignore[misc]
        self.invalid = invalid

    def grpc_status(self) -> Status:
        """INVALID_ARGUMENT for an invalid request, else FAILED_PRECONDITION (a conflict)."""
        return "INVALID_ARGUMENT" if self.invalid else self.status
