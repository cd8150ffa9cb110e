"""The ports payments talks to other services through: the ledger and risk.

Adapters (``adapters.py``) speak gRPC; fakes (``testing.py``) keep the same
semantics in memory. Ledger results are the contract's result names,
lower-cased, without their prefix: ``"ok"``, ``"exists"``,
``"exceeds_credits"``, ... A call that may succeed if retried raises
:class:`~paymesh.payments.errors.TransientError`; a definitive refusal of
the whole call raises :class:`~paymesh.payments.errors.RemoteRefusal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from paymesh.payments.domain import Payment, RiskAssessment, Transfer
from paymesh.platform.identity import Caller

__all__ = ["LedgerAccount", "LedgerClient", "RiskClient"]


@dataclass(frozen=True)
class LedgerAccount:
    """An account payments asks the ledger to open (the tenant's funding account)."""

    id: str
    currency: str
    code: str
    # False lets the account go negative: it stands for money outside the platform.
    no_overdraft: bool = False


class LedgerClient(Protocol):
    """The accounts service's ledger, as payments needs it."""

    async def create_accounts(
        self, caller: Caller, accounts: Sequence[LedgerAccount]
    ) -> list[str]: ...

    async def create_transfers(
        self, caller: Caller, transfers: Sequence[Transfer]
    ) -> list[str]: ...

    async def lookup_transfers(self, caller: Caller, ids: Sequence[str]) -> list[Transfer]: ...


class RiskClient(Protocol):
    """The risk service: one decision per payment, idempotent by payment id."""

    async def decide(self, caller: Caller, payment: Payment) -> RiskAssessment: ...
