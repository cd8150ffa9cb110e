"""The ports payments talks to the world through: the ledger, risk and the bank.

Adapters (``adapters.py``) speak gRPC; fakes (``tests/fakes/payments_ports.py``) keep the same
semantics in memory. Ledger results are the contract's result names,
lower-cased, without their prefix: ``"ok"``, ``"exists"``,
``"exceeds_credits"``, ... A call that may succeed if retried raises
:class:`~paymesh.payments.errors.TransientError`; a definitive refusal of
the whole call raises :class:`~paymesh.payments.errors.RemoteRefusal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain import BankResult, Payment, RiskAssessment, Transfer
from paymesh.payments.domain.reconciliation import Tolerance
from paymesh.platform.banking import BankAccount
from paymesh.platform.clock import Clock
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.store import SqlPaymentsStore

__all__ = [
    "DEFAULT_AUTHORIZATION_TTL_S",
    "BankAccount",
    "Connector",
    "Deps",
    "LedgerAccount",
    "LedgerClient",
    "RetryPolicy",
    "RiskClient",
]


@dataclass(frozen=True)
class LedgerAccount:
    """An account payments asks the ledger to open (the tenant's funding account), or one
    a lookup found."""

    id: str
    currency: str
    code: str
    # False lets the account go negative: it stands for money outside the platform.
    no_overdraft: bool = False
    # Where settlement payouts by bank file go (iban, bic, name; None: none). It may change
    # at any time: read it with ``lookup_accounts(..., fresh=True)``.
    bank_account: BankAccount | None = None


class LedgerClient(Protocol):
    """The accounts service's ledger, as payments needs it."""

    async def create_accounts(
        self, caller: Caller, accounts: Sequence[LedgerAccount]
    ) -> list[str]: ...

    async def create_transfers(
        self, caller: Caller, transfers: Sequence[Transfer]
    ) -> list[str]: ...

    async def lookup_transfers(self, caller: Caller, ids: Sequence[str]) -> list[Transfer]: ...

    async def lookup_accounts(
        self, caller: Caller, ids: Sequence[str], *, fresh: bool = False
    ) -> list[LedgerAccount]:
        """The caller's accounts among `ids` (unknown and other tenants' are left out).

        An adapter may answer accounts it has seen from memory: their id, tenant,
        currency, code and flags never change, but their `bank_account` may have since.
        `fresh` asks the ledger itself (what a payout by bank file must do).
        """
        ...


class RiskClient(Protocol):
    """The risk service: one decision per payment, idempotent by payment id."""

    async def decide(self, caller: Caller, payment: Payment) -> RiskAssessment: ...


class Connector(Protocol):
    """The external funding source (a bank): money in (pull) and out (push).

    Every request carries a reference chosen by the caller (the top-up or
    payout id) and the bank recognises it: asking again with the same
    reference answers the first outcome and moves no more money. An outcome
    ``unknown`` (the answer was lost, or the bank has not decided) is never
    guessed: the caller asks ``status(ref)`` until it is known. A raised
    exception means the request may not have arrived; sending it again is safe.
    """

    async def pull(self, ref: str, account: str, amount: int, currency: str) -> BankResult: ...

    async def push(self, ref: str, account: str, amount: int, currency: str) -> BankResult: ...

    async def status(self, ref: str) -> BankResult: ...


DEFAULT_AUTHORIZATION_TTL_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a step is tried inline, and how the Resumer backs off after that."""

    inline_attempts: int = 3
    inline_wait_s: float = 0.05
    inline_wait_max_s: float = 0.5
    resume_base_s: float = 1.0
    resume_max_s: float = 300.0
    lease_s: float = 30.0
    # A step still failing transiently this long after it was first recorded is given up
    # safely (see the package docstring); compensations and lookups never are.
    step_deadline_s: float = 15 * 60.0
    # How long after a step is given up its transfer's fate may be asked: more than one
    # inline run of the step lasts (attempts x (gRPC deadline + wait)).
    settle_s: float = 30.0


@dataclass(frozen=True)
class Deps:
    """What the use cases and the saga runner need."""

    store: SqlPaymentsStore
    ledger: LedgerClient
    risk: RiskClient
    clock: Clock
    retry: RetryPolicy = RetryPolicy()
    # The external funding source; by default a bank that always pays at once.
    bank: Connector = field(default_factory=SimulatedBank)
    # An authorisation not captured within this is canceled (its hold voided).
    authorization_ttl_s: float = DEFAULT_AUTHORIZATION_TTL_S
    # How far a bank statement's line may differ from its ledger object and still match.
    reconciliation_tolerance: Tolerance = field(default_factory=Tolerance)
