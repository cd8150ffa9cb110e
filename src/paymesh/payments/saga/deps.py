"""What the saga and the use cases need: the retry policy and the dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field

from paymesh.payments.bank import SimulatedBank
from paymesh.payments.ports import Connector, LedgerClient, RiskClient
from paymesh.payments.store import SqlPaymentsStore
from paymesh.platform.clock import Clock

__all__ = ["DEFAULT_AUTHORIZATION_TTL_S", "Deps", "RetryPolicy"]

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
