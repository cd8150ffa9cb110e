"""The payments service's ports in memory: the ledger and risk, with their real semantics.

Unlike the other fakes here (the services as the gateway calls them), these
stand behind :mod:`paymesh.payments.ports` for the payments service's own tests.

:class:`FakeLedger` keeps TigerBeetle's rules that payments relies on:
caller-chosen ids (same id and fields: ``exists``), pending / post / void,
linked chains (all or nothing; ``exists`` counts as success), no overdraft
on accounts that ask for it, one tenant per account. Both fakes can be told
to fail the next calls transiently, before or after applying them (a lost
reply), and the ledger to go down (every call fails) and come back, to
exercise the saga's retries and deadlines; the ledger can also be told to
refuse a given transfer id for good, or to expire a hold.

The bank's fake is the real simulated bank (:mod:`paymesh.payments.bank`)
with a seeded ``random.Random``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from paymesh.payments.domain import Payment, RiskAssessment, Transfer, TransferKind
from paymesh.payments.errors import TransientError
from paymesh.payments.ports import BankAccount, LedgerAccount
from paymesh.platform.identity import Caller

__all__ = ["FakeAccount", "FakeLedger", "FakeRisk"]


@dataclass
class FakeAccount:
    id: str
    tenant_id: str
    currency: str
    code: str = ""
    no_overdraft: bool = True
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    bank_account: BankAccount | None = None

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What may still be debited: the balance less the holds."""
        return self.credits_posted - self.debits_posted - self.debits_pending


@dataclass
class _Stored:
    transfer: Transfer
    tenant_id: str
    # For pending transfers: "pending", "posted" or "voided".
    state: str = ""


@dataclass
class _Failures:
    count: int = 0
    after: bool = False
    # Once these failures are used up, the ledger becomes unavailable.
    then_down: bool = False

    def take(self) -> bool:
        if self.count <= 0:
            return False
        self.count -= 1
        return True


class FakeLedger:
    """The accounts ledger, in memory."""

    def __init__(self) -> None:
        self.accounts: dict[str, FakeAccount] = {}
        self.transfers: dict[str, _Stored] = {}
        # Every transfer id asked for, in order, including retries.
        self.calls: list[str] = []
        # Transfer ids the ledger refuses for good, with the result it answers.
        self.refusals: dict[str, str] = {}
        self._failures = _Failures()
        # Unavailable: every call fails transiently, nothing is applied.
        self.down = False
        # Every transfer id looked up, in order.
        self.lookups: list[str] = []

    def open(
        self, account_id: str, currency: str, *, tenant_id: str, balance: int = 0, code: str = ""
    ) -> FakeAccount:
        """Open an account without overdraft, credited with `balance` (test setup)."""
        account = FakeAccount(account_id, tenant_id, currency, code, credits_posted=balance)
        self.accounts[account_id] = account
        return account

    def fail_next(self, count: int, *, after: bool = False, then_down: bool = False) -> None:
        """Fail the next `count` calls transiently; `after`: apply them first (lost reply);
        `then_down`: the ledger is unavailable afterwards (until `down` is set False)."""
        self._failures = _Failures(count, after, then_down)

    def _unavailable(self) -> None:
        if self.down:
            raise TransientError("ledger unavailable")

    def _take_failure(self) -> bool:
        failing = self._failures.take()
        if failing and self._failures.count == 0 and self._failures.then_down:
            self.down = True
        return failing

    def refuse(self, transfer_id: str, result: str = "exceeds_credits") -> None:
        """Refuse the transfer `transfer_id` with `result` whenever it is asked for."""
        self.refusals[transfer_id] = result

    def expire(self, pending_id: str) -> None:
        """Expire the hold `pending_id` as the ledger's sweeper would: its money comes back."""
        stored = self.transfers[pending_id]
        assert stored.state == "pending"
        held = stored.transfer
        self.accounts[held.debit_account_id].debits_pending -= held.amount
        self.accounts[held.credit_account_id].credits_pending -= held.amount
        stored.state = "expired"

    def balance(self, account_id: str) -> int:
        """The account's posted balance."""
        return self.accounts[account_id].balance

    async def create_accounts(self, caller: Caller, accounts: Sequence[LedgerAccount]) -> list[str]:
        """Open accounts; one result per account."""
        self._unavailable()
        failing = self._take_failure()
        if failing and not self._failures.after:
            raise TransientError("ledger unavailable")
        results = []
        for a in accounts:
            found = self.accounts.get(a.id)
            if found is None:
                self.accounts[a.id] = FakeAccount(
                    a.id,
                    caller.tenant_id,
                    a.currency,
                    a.code,
                    a.no_overdraft,
                    bank_account=a.bank_account,
                )
                results.append("ok")
            elif found.tenant_id != caller.tenant_id:
                results.append("exists_for_other_tenant")
            elif found.currency != a.currency:
                results.append("exists_with_different_currency")
            elif found.no_overdraft != a.no_overdraft:
                results.append("exists_with_different_flags")
            else:
                results.append("exists")
        if failing:
            raise TransientError("reply lost")
        return results

    async def create_transfers(self, caller: Caller, transfers: Sequence[Transfer]) -> list[str]:
        """Create transfers; one result per transfer."""
        self.calls.extend(t.id for t in transfers)
        self._unavailable()
        failing = self._take_failure()
        if failing and not self._failures.after:
            raise TransientError("ledger unavailable")
        results = self._batch(caller.tenant_id, transfers)
        if failing:
            raise TransientError("reply lost")
        return results

    async def lookup_accounts(
        self, caller: Caller, ids: Sequence[str], *, fresh: bool = False
    ) -> list[LedgerAccount]:
        """The caller's accounts among `ids` (always as they are now, fresh or not)."""
        self._unavailable()
        found = [self.accounts.get(i) for i in ids]
        return [
            LedgerAccount(a.id, a.currency, a.code, a.no_overdraft, a.bank_account)
            for a in found
            if a is not None and a.tenant_id == caller.tenant_id
        ]

    def _batch(self, tenant_id: str, transfers: Sequence[Transfer]) -> list[str]:
        """Apply each linked chain (a lone transfer is a chain of one) all or nothing."""
        results: list[str] = []
        chain: list[Transfer] = []
        for t in transfers:
            chain.append(t)
            if not t.linked:
                results.extend(self._chain(tenant_id, chain))
                chain = []
        results.extend("linked_event_chain_open" for _ in chain)
        return results

    def _chain(self, tenant_id: str, chain: list[Transfer]) -> list[str]:
        saved = copy.deepcopy((self.accounts, self.transfers))
        results = []
        for t in chain:
            result = self._create(tenant_id, t)
            if result not in ("ok", "exists"):
                self.accounts, self.transfers = saved
                return [result if u is t else "linked_event_failed" for u in chain]
            results.append(result)
        return results

    async def lookup_transfers(self, caller: Caller, ids: Sequence[str]) -> list[Transfer]:
        """The caller's transfers among `ids`."""
        self.lookups.extend(ids)
        self._unavailable()
        found = [self.transfers.get(i) for i in ids]
        return [s.transfer for s in found if s is not None and s.tenant_id == caller.tenant_id]

    def _create(self, tenant_id: str, t: Transfer) -> str:
        if t.id in self.refusals:
            return self.refusals[t.id]
        stored = self.transfers.get(t.id)
        if stored is not None:
            return "exists" if stored.transfer == t else "exists_with_different_amount"
        if t.amount <= 0:
            return "amount_must_be_positive"
        debit = self.accounts.get(t.debit_account_id)
        credit = self.accounts.get(t.credit_account_id)
        if debit is None:
            return "debit_account_not_found"
        if credit is None:
            return "credit_account_not_found"
        if debit.tenant_id != tenant_id or credit.tenant_id != tenant_id:
            return "tenant_mismatch"
        if not debit.currency == credit.currency == t.currency:
            return "currency_mismatch"
        if t.kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING):
            return self._resolve(tenant_id, t, debit, credit)
        if debit.no_overdraft and t.amount > debit.available:
            return "exceeds_credits"
        if t.kind is TransferKind.PENDING:
            debit.debits_pending += t.amount
            credit.credits_pending += t.amount
            self.transfers[t.id] = _Stored(t, tenant_id, "pending")
        else:
            debit.debits_posted += t.amount
            credit.credits_posted += t.amount
            self.transfers[t.id] = _Stored(t, tenant_id)
        return "ok"

    def _resolve(self, tenant_id: str, t: Transfer, debit: FakeAccount, credit: FakeAccount) -> str:
        pending = self.transfers.get(t.pending_id)
        if pending is None:
            return "pending_transfer_not_found"
        if pending.transfer.kind is not TransferKind.PENDING:
            return "pending_transfer_not_pending"
        if pending.state == "posted":
            return "pending_transfer_already_posted"
        if pending.state == "voided":
            return "pending_transfer_already_voided"
        if pending.state == "expired":
            return "pending_transfer_expired"
        held = pending.transfer
        if (held.debit_account_id, held.credit_account_id) != (debit.id, credit.id):
            return "pending_transfer_has_different_accounts"
        if t.amount > held.amount:
            return "amount_exceeds_pending_amount"
        debit.debits_pending -= held.amount
        credit.credits_pending -= held.amount
        if t.kind is TransferKind.POST_PENDING:
            debit.debits_posted += t.amount
            credit.credits_posted += t.amount
            pending.state = "posted"
        else:
            pending.state = "voided"
        self.transfers[t.id] = _Stored(t, tenant_id)
        return "ok"


@dataclass
class FakeRisk:
    """Risk, in memory: a fixed outcome per payment id (default: approve), decided once."""

    default: str = "approve"
    outcomes: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, RiskAssessment] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    failures: int = 0

    async def decide(self, caller: Caller, payment: Payment) -> RiskAssessment:
        """Decide on `payment`, or answer the decision already made."""
        self.calls.append(payment.id)
        if self.failures > 0:
            self.failures -= 1
            raise TransientError("risk unavailable")
        if payment.id not in self.decisions:
            outcome = self.outcomes.get(payment.id, self.default)
            reasons = () if outcome == "approve" else ("test_rule",)
            score = {"approve": 10, "review": 60, "decline": 95}.get(outcome, 50)
            self.decisions[payment.id] = RiskAssessment(outcome, score, reasons, "test-1")
        return self.decisions[payment.id]
