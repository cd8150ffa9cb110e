"""The payments service's errors; each carries a stable snake_case ``code`` and the
gRPC ``status`` a call raising it ends with (:class:`~paymesh.platform.errors.ServiceError`).

::

    PaymentsError                payments_error             (INTERNAL)
    ├── InvalidRequest           invalid_request            (INVALID_ARGUMENT)
    │   └── CurrencyMismatch     currency_mismatch          (INVALID_ARGUMENT)
    ├── NotFound                 not_found                  (NOT_FOUND)
    │   └── AccountNotFound      account_not_found          (NOT_FOUND)
    ├── Forbidden                forbidden                  (PERMISSION_DENIED)
    ├── IdReused                 id_reused                  (ALREADY_EXISTS)
    │   ├── PlatformAccount      platform_account           (INVALID_ARGUMENT)
    │   ├── InvalidBankFile      invalid_bank_file          (INVALID_ARGUMENT)
    │   └── StatementAccountMismatch statement_account_mismatch (INVALID_ARGUMENT)
    ├── InvalidState             invalid_state              (FAILED_PRECONDITION)
    │   ├── CutoffBeforeLastRun  cutoff_before_last_run     (FAILED_PRECONDITION)
    │   └── BreakResolved        break_already_resolved     (FAILED_PRECONDITION)
    ├── DuplicateStatement       duplicate_statement        (ALREADY_EXISTS)
    ├── PaymentBusy              payment_busy               (FAILED_PRECONDITION)
    ├── AmountExceedsAuthorized  amount_exceeds_authorized  (FAILED_PRECONDITION)
    ├── AmountExceedsRefundable  amount_exceeds_refundable  (FAILED_PRECONDITION)
    └── RemoteError              remote_error               (UNAVAILABLE)
        ├── TransientError       transient                  (UNAVAILABLE)
        └── RemoteRefusal        the remote's own code      (UNAVAILABLE)

A :class:`RemoteError` is a call to accounts or risk gone wrong: a
:class:`TransientError` is retried (the saga step stays recorded), a
:class:`RemoteRefusal` (the remote said no for good) fails the step.
"""

from __future__ import annotations

from paymesh.platform.errors import ServiceError

__all__ = [
    "AccountNotFound",
    "AmountExceedsAuthorized",
    "AmountExceedsRefundable",
    "BreakResolved",
    "CurrencyMismatch",
    "CutoffBeforeLastRun",
    "DuplicateStatement",
    "Forbidden",
    "IdReused",
    "InvalidBankFile",
    "InvalidRequest",
    "InvalidState",
    "NotFound",
    "PaymentBusy",
    "PaymentsError",
    "PlatformAccount",
    "RemoteError",
    "RemoteRefusal",
    "StatementAccountMismatch",
    "TransientError",
]


class PaymentsError(ServiceError):
    """The root of every error the payments service raises on purpose."""

    code = "payments_error"


class InvalidRequest(PaymentsError):
    """A command is malformed: bad amount, unknown currency, missing field."""

    code = "invalid_request"
    status = "INVALID_ARGUMENT"


class NotFound(PaymentsError):
    """No such object for this tenant (another tenant's object looks the same)."""

    code = "not_found"
    status = "NOT_FOUND"


class CurrencyMismatch(InvalidRequest):
    """A command names an account whose currency is not the command's."""

    code = "currency_mismatch"
    status = "INVALID_ARGUMENT"


class AccountNotFound(NotFound):
    """A command names an account the tenant does not have (another tenant's looks the same)."""

    code = "account_not_found"
    status = "NOT_FOUND"


class Forbidden(PaymentsError):
    """The caller may not do this (e.g. set fees without the admin scope)."""

    code = "forbidden"
    status = "PERMISSION_DENIED"


class IdReused(PaymentsError):
    """An id chosen by the caller already names an object with other fields."""

    code = "id_reused"
    status = "ALREADY_EXISTS"


class InvalidState(PaymentsError):
    """The object's status does not allow this command."""

    code = "invalid_state"
    status = "FAILED_PRECONDITION"


class PaymentBusy(PaymentsError):
    """Another step of this payment is in progress."""

    code = "payment_busy"
    status = "FAILED_PRECONDITION"


class AmountExceedsAuthorized(PaymentsError):
    """A capture asks for more than the hold reserved."""

    code = "amount_exceeds_authorized"
    status = "FAILED_PRECONDITION"


class AmountExceedsRefundable(PaymentsError):
    """A refund asks for more than was captured and not yet refunded."""

    code = "amount_exceeds_refundable"
    status = "FAILED_PRECONDITION"


class PlatformAccount(InvalidRequest):
    """A command names one of the platform's own accounts (funding, revenue, suspense)."""

    code = "platform_account"


class InvalidBankFile(InvalidRequest):
    """A bank file (a statement) is malformed or breaks its format's rules."""

    code = "invalid_bank_file"


class StatementAccountMismatch(InvalidRequest):
    """A bank statement is of another account than the tenant's own (its debtor account)."""

    code = "statement_account_mismatch"


class DuplicateStatement(PaymentsError):
    """The tenant already imported a statement with this bank statement id."""

    code = "duplicate_statement"
    status = "ALREADY_EXISTS"


class CutoffBeforeLastRun(InvalidState):
    """A settlement run's cutoff is before the last run's (runs follow one another)."""

    code = "cutoff_before_last_run"


class BreakResolved(InvalidState):
    """The reconciliation break is already resolved."""

    code = "break_already_resolved"


class RemoteError(PaymentsError):
    """A call to another service failed."""

    code = "remote_error"
    status = "UNAVAILABLE"


class TransientError(RemoteError):
    """The call may succeed if tried again (unavailable, deadline, overloaded)."""

    code = "transient"
    status = "UNAVAILABLE"


class RemoteRefusal(RemoteError):
    """The other service refused the call for good; `code` is its stable error code."""

    status = "UNAVAILABLE"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        # The one error whose code is not its class's: the remote chose it.
        self.code = code  # type: ignore[misc]
