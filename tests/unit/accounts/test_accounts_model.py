"""The domain agrees with a tiny independent model of the ledger on random batches."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from paymesh.accounts.domain import (
    Account,
    AccountFlags,
    LedgerState,
    Transfer,
    TransferFlags,
    create_transfers,
    expire_pending,
)

TENANT = "ten"
START = 1_000_000_000_000
ACCOUNTS = {
    "a": AccountFlags(debits_must_not_exceed_credits=True),
    "b": AccountFlags(credits_must_not_exceed_debits=True),
    "c": AccountFlags(),
    "d": AccountFlags(debits_must_not_exceed_credits=True),
}
IDS = [f"t{i}" for i in range(5)]


# --- the reference model: plain dicts, deep copies for chains -----------------------


@dataclass
class Model:
    """Balances as [dp, dq, cp, cq] lists; transfers as plain dicts."""

    bal: dict[str, list[int]] = field(
        default_factory=lambda: {k: [0, 0, 0, 0] for k in [*ACCOUNTS, "e"]}
    )
    transfers: dict[str, dict[str, object]] = field(default_factory=dict)
    done: dict[str, str] = field(default_factory=dict)  # pending id -> "post" | "void" | "exp"

    def kind(self, t: Transfer) -> str:
        f = t.flags
        return (
            "post"
            if f.post_pending
            else "void"
            if f.void_pending
            else "pend"
            if f.pending
            else "one"
        )

    def apply(self, t: Transfer, now: int) -> str:
        if t.id in self.transfers:
            return self.same(t, self.transfers[t.id])
        k = self.kind(t)
        if t.flags.pending + t.flags.post_pending + t.flags.void_pending > 1:
            return "flags_are_mutually_exclusive"
        if k in ("post", "void") and not t.pending_id:
            return "pending_id_required"
        if k not in ("post", "void") and t.pending_id:
            return "pending_id_must_be_empty"
        if t.timeout_seconds and k != "pend":
            return "timeout_reserved_for_pending_transfer"
        if k in ("post", "void"):
            return self.resolve(t, k, now)
        if t.amount <= 0:
            return "amount_must_be_positive"
        if t.debit_account_id == t.credit_account_id:
            return "accounts_must_be_different"
        if t.debit_account_id not in self.bal:
            return "debit_account_not_found"
        if t.credit_account_id not in self.bal:
            return "credit_account_not_found"
        if "e" in (t.debit_account_id, t.credit_account_id):
            return "currency_mismatch"
        dr, cr = self.bal[t.debit_account_id], self.bal[t.credit_account_id]
        col = 0 if k == "pend" else 1
        dr[col] += t.amount
        cr[2 + col] += t.amount
        if ACCOUNTS[t.debit_account_id].debits_must_not_exceed_credits and dr[0] + dr[1] > dr[3]:
            return "exceeds_credits"
        if ACCOUNTS[t.credit_account_id].credits_must_not_exceed_debits and cr[2] + cr[3] > cr[1]:
            return "exceeds_debits"
        expires = now + t.timeout_seconds * 1_000_000 if t.timeout_seconds else None
        self.transfers[t.id] = {
            "t": t, "amount": t.amount, "kind": k, "expires": expires,
            "dr": t.debit_account_id, "cr": t.credit_account_id,
        }  # fmt: skip
        return "ok"

    def resolve(self, t: Transfer, k: str, now: int) -> str:
        p = self.transfers.get(t.pending_id)
        if p is None:
            return "pending_transfer_not_found"
        if p["kind"] != "pend":
            return "pending_transfer_not_pending"
        amount = int(p["amount"])  # type: ignore[call-overload]
        if t.amount > amount:
            return "amount_exceeds_pending_amount"
        if k == "void" and t.amount not in (0, amount):
            return "pending_transfer_has_different_amount"
        state = self.done.get(t.pending_id)
        if state is not None:
            return {
                "post": "pending_transfer_already_posted",
                "void": "pending_transfer_already_voided",
                "exp": "pending_transfer_expired",
            }[state]
        if p["expires"] is not None and now >= p["expires"]:  # type: ignore[operator]
            return "pending_transfer_expired"
        posted = (t.amount or amount) if k == "post" else 0
        dr, cr = self.bal[str(p["dr"])], self.bal[str(p["cr"])]
        dr[0] -= amount
        dr[1] += posted
        cr[2] -= amount
        cr[3] += posted
        self.done[t.pending_id] = k
        self.transfers[t.id] = {
            "t": t, "amount": posted if k == "post" else amount, "kind": k, "expires": None,
            "dr": p["dr"], "cr": p["cr"],
        }  # fmt: skip
        return "ok"

    def same(self, t: Transfer, e: dict[str, object]) -> str:
        old = e["t"]
        assert isinstance(old, Transfer)
        if t.flags != old.flags:
            return "exists_with_different_flags"
        if t.pending_id != old.pending_id:
            return "exists_with_different_pending_id"
        if t.timeout_seconds != old.timeout_seconds:
            return "exists_with_different_timeout"
        if t.debit_account_id != old.debit_account_id:
            return "exists_with_different_debit_account_id"
        if t.credit_account_id != old.credit_account_id:
            return "exists_with_different_credit_account_id"
        sent = t.amount
        if e["kind"] in ("post", "void") and sent == 0:
            sent = int(self.transfers[t.pending_id]["amount"])  # type: ignore[call-overload]
        if sent != e["amount"]:
            return "exists_with_different_amount"
        return "exists"

    def batch(self, batch: list[Transfer], now: int) -> list[str]:
        results: list[str] = []
        chain: list[Transfer] = []
        for t in batch:
            chain.append(t)
            if t.flags.linked:
                continue
            saved = copy.deepcopy((self.bal, self.transfers, self.done))
            got = [self.apply(c, now) for c in chain]
            bad = [i for i, r in enumerate(got) if r not in ("ok", "exists")]
            if bad:
                # Items after the first failure were never evaluated by the ledger.
                self.bal, self.transfers, self.done = saved
                got = ["linked_event_failed"] * len(chain)
                got[bad[0]] = self.first_error(chain, now)
            results.extend(got)
            chain = []
        results.extend(["linked_event_chain_open"] * len(chain))
        return results

    def first_error(self, chain: list[Transfer], now: int) -> str:
        """The answer of the first failing item, evaluated on a throwaway copy."""
        scratch = copy.deepcopy(self)
        for c in chain:
            r = scratch.apply(c, now)
            if r not in ("ok", "exists"):
                return r
        raise AssertionError("the chain did not fail twice")

    def expire(self, now: int) -> None:
        for pid, p in list(self.transfers.items()):
            due = p["expires"] is not None and now >= p["expires"]  # type: ignore[operator]
            if p["kind"] == "pend" and pid not in self.done and due:
                amount = int(p["amount"])  # type: ignore[call-overload]
                self.bal[str(p["dr"])][0] -= amount
                self.bal[str(p["cr"])][2] -= amount
                self.done[pid] = "exp"


# --- the ledger under test, driven like a store drives it -----------------------------


class Ledger:
    def __init__(self) -> None:
        self.accounts = {
            k: Account(id=k, currency="USD", tenant_id=TENANT, flags=f) for k, f in ACCOUNTS.items()
        }
        self.accounts["e"] = Account(id="e", currency="EUR", tenant_id=TENANT)
        self.transfers: dict[str, Transfer] = {}

    def state(self) -> LedgerState:
        res = {t.pending_id: t for t in self.transfers.values() if t.resolves_pending}
        return LedgerState(dict(self.accounts), dict(self.transfers), res)

    def absorb(self, created: list[Transfer], accounts: dict[str, Account]) -> None:
        for t in created:
            assert t.id not in self.transfers
            self.transfers[t.id] = t
        self.accounts.update(accounts)

    def bal(self, k: str) -> list[int]:
        a = self.accounts[k]
        return [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]


# --- random batches ----------------------------------------------------------------

_accounts = st.sampled_from([*ACCOUNTS, "e", "zz"])


@st.composite
def transfers(draw: st.DrawFn) -> Transfer:
    kind = draw(st.sampled_from(["one", "pend", "pend", "post", "void"]))
    linked = draw(st.booleans()) and draw(st.booleans())
    tid = draw(st.sampled_from(IDS))
    if kind in ("post", "void"):
        return Transfer(
            id=tid,
            pending_id=draw(st.sampled_from(IDS)),
            amount=draw(st.sampled_from([0, 0, 5, 10, 20, 50])),
            flags=TransferFlags(
                linked=linked, post_pending=kind == "post", void_pending=kind == "void"
            ),
        )
    return Transfer(
        id=tid,
        debit_account_id=draw(_accounts),
        credit_account_id=draw(_accounts),
        amount=draw(st.sampled_from([-1, 0, 5, 10, 20, 50])),
        currency="USD",
        flags=TransferFlags(linked=linked, pending=kind == "pend"),
        timeout_seconds=draw(st.sampled_from([0, 0, 1, 3])) if kind == "pend" else 0,
    )


steps = st.lists(
    st.tuples(st.lists(transfers(), max_size=6), st.integers(0, 2), st.booleans()), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_domain_matches_the_reference_model_and_posted_debits_equal_credits(
    script: list[tuple[list[Transfer], int, bool]],
) -> None:
    model, ledger, now = Model(), Ledger(), START
    # Seed money: c (no limits) funds a and d.
    seed = [
        Transfer(
            id=f"seed_{k}", debit_account_id="c", credit_account_id=k, amount=n, currency="USD"
        )
        for k, n in (("a", 60), ("d", 30))
    ]
    for batch, seconds, sweep in [(seed, 0, False), *script]:
        out = create_transfers(ledger.state(), batch, TENANT, now)
        assert [r.value for r in out.results] == model.batch(batch, now), batch
        ledger.absorb(out.created, out.accounts)
        now += seconds * 1_000_000
        if sweep:
            pending = [t for t in ledger.transfers.values() if t.flags.pending]
            expired = expire_pending(ledger.state(), pending, now)
            ledger.absorb(expired.created, expired.accounts)
            model.expire(now)
        for k in model.bal:
            assert ledger.bal(k) == model.bal[k], k
        bals = [ledger.bal(k) for k in ledger.accounts]
        assert sum(b[1] for b in bals) == sum(b[3] for b in bals)
        assert sum(b[0] for b in bals) == sum(b[2] for b in bals)
        _balances_are_the_sum_of_transfers(ledger)


def _balances_are_the_sum_of_transfers(ledger: Ledger) -> None:
    want = {k: [0, 0, 0, 0] for k in ledger.accounts}
    for t in sorted(ledger.transfers.values(), key=lambda t: t.created_at_us):
        if t.flags.pending:
            want[t.debit_account_id][0] += t.amount
            want[t.credit_account_id][2] += t.amount
        elif t.resolves_pending:
            held = ledger.transfers[t.pending_id].amount
            posted = t.amount if t.flags.post_pending else 0
            want[t.debit_account_id][0] -= held
            want[t.debit_account_id][1] += posted
            want[t.credit_account_id][2] -= held
            want[t.credit_account_id][3] += posted
        else:
            want[t.debit_account_id][1] += t.amount
            want[t.credit_account_id][3] += t.amount
    for k in ledger.accounts:
        assert ledger.bal(k) == want[k], k
