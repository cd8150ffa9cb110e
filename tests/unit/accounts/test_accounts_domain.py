"""The ledger's rules: every result code at its boundary, holds, chains, retries."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from paymesh.accounts.domain import (
    INT64_MAX,
    Account,
    AccountFlags,
    AccountResult,
    Balance,
    LedgerState,
    Transfer,
    TransferFlags,
    TransferResult,
    TransfersOutcome,
    create_accounts,
    create_transfers,
    expire_pending,
)
from paymesh.platform.money import MAX_AMOUNT

R = TransferResult
A = AccountResult
T = "ten_a"
NOW = 1_700_000_000_000_000
NO_OVERDRAFT = AccountFlags(debits_must_not_exceed_credits=True)
NO_OVERCREDIT = AccountFlags(credits_must_not_exceed_debits=True)
PENDING = TransferFlags(pending=True)
POST = TransferFlags(post_pending=True)
VOID = TransferFlags(void_pending=True)
LINKED = TransferFlags(linked=True)


def acct(id_: str, *, tenant: str = T, currency: str = "USD", **kw: Any) -> Account:
    return Account(id=id_, currency=currency, tenant_id=tenant, **kw)


def tr(id_: str, dr: str = "a", cr: str = "b", amount: int = 10, **kw: Any) -> Transfer:
    kw.setdefault("currency", "USD")
    return Transfer(id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, **kw)


class Ledger:
    """Applies batches one after another, as a store would."""

    def __init__(self, *accounts: Account) -> None:
        self.accounts = {a.id: a for a in accounts}
        self.transfers: dict[str, Transfer] = {}
        self.now = NOW

    def state(self) -> LedgerState:
        res = {t.pending_id: t for t in self.transfers.values() if t.resolves_pending}
        return LedgerState(dict(self.accounts), dict(self.transfers), res)

    def _absorb(self, out: TransfersOutcome) -> TransfersOutcome:
        for t in out.created:
            assert t.id not in self.transfers
            self.transfers[t.id] = t
        self.accounts.update(out.accounts)
        return out

    def run(self, *batch: Transfer, tenant: str = T) -> TransfersOutcome:
        return self._absorb(create_transfers(self.state(), batch, tenant, self.now))

    def results(self, *batch: Transfer, tenant: str = T) -> list[TransferResult]:
        return self.run(*batch, tenant=tenant).results

    def expire(self) -> TransfersOutcome:
        pend = [t for t in self.transfers.values() if t.flags.pending]
        return self._absorb(expire_pending(self.state(), pend, self.now))

    def bal(self, id_: str) -> tuple[int, int, int, int]:
        a = self.accounts[id_]
        return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted


def funded(amount: int = 100, *, flags: AccountFlags = NO_OVERDRAFT) -> Ledger:
    """`a` (with `flags`) holds `amount` credited from `bank`; `b` is empty."""
    led = Ledger(acct("a", flags=flags), acct("b"), acct("bank"))
    assert led.results(tr("fund", "bank", "a", amount)) == [R.OK]
    return led


# --- accounts ---------------------------------------------------------------


def test_new_accounts_are_created_for_the_callers_tenant_with_the_time() -> None:
    out = create_accounts({}, [Account(id="a", currency="EUR", tenant_id="x")], T, NOW)
    assert out.results == [A.OK]
    assert out.created[0].tenant_id == T
    assert out.created[0].created_at_us == NOW


@pytest.mark.parametrize(
    ("account", "result"),
    [
        (Account(id="", currency="USD"), A.INVALID_ID),
        (Account(id="x" * 65, currency="USD"), A.INVALID_ID),
        (Account(id="usd", currency="usd"), A.INVALID_CURRENCY),
        (Account(id="xxx", currency="XXX"), A.INVALID_CURRENCY),
        (
            Account(id="f", currency="USD", flags=AccountFlags(True, True)),
            A.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        ),
        (Account(id="b", currency="USD", credits_posted=1), A.BALANCES_MUST_BE_ZERO),
        (Account(id="b", currency="USD", debits_pending=1), A.BALANCES_MUST_BE_ZERO),
    ],
)
def test_an_invalid_account_is_rejected_with_its_reason(
    account: Account, result: AccountResult
) -> None:
    out = create_accounts({}, [account], T, NOW)
    assert out.results == [result]
    assert out.created == []


def test_an_id_of_exactly_64_characters_is_accepted() -> None:
    assert create_accounts({}, [Account(id="x" * 64, currency="USD")], T, NOW).results == [A.OK]


@pytest.mark.parametrize(
    ("again", "result"),
    [
        (Account(id="a", currency="USD", code="customer", metadata={"k": "v"}), A.EXISTS),
        (
            Account(id="a", currency="EUR", code="customer", metadata={"k": "v"}),
            A.EXISTS_WITH_DIFFERENT_CURRENCY,
        ),
        (
            Account(
                id="a", currency="USD", flags=NO_OVERDRAFT, code="customer", metadata={"k": "v"}
            ),
            A.EXISTS_WITH_DIFFERENT_FLAGS,
        ),
        (
            Account(id="a", currency="USD", code="merchant", metadata={"k": "v"}),
            A.EXISTS_WITH_DIFFERENT_CODE,
        ),
        (
            Account(id="a", currency="USD", code="customer", metadata={"k": "w"}),
            A.EXISTS_WITH_DIFFERENT_METADATA,
        ),
    ],
)
def test_an_account_created_again_answers_exists_or_its_first_difference(
    again: Account, result: AccountResult
) -> None:
    first = Account(id="a", currency="USD", code="customer", metadata={"k": "v"})
    out = create_accounts({}, [first, again], T, NOW)
    assert out.results == [A.OK, result]
    assert len(out.created) == 1


def test_an_account_id_of_another_tenant_answers_exists_for_other_tenant() -> None:
    existing = {"a": acct("a", tenant="ten_other")}
    out = create_accounts(existing, [Account(id="a", currency="USD")], T, NOW)
    assert out.results == [A.EXISTS_FOR_OTHER_TENANT]
    assert out.accounts == [None]


# --- single-phase transfers ---------------------------------------------------


def test_a_single_phase_transfer_posts_at_once() -> None:
    led = funded(100)
    out = led.run(tr("t1", "a", "b", 30, code="p2p", reference="r1"))
    assert out.results == [R.OK]
    assert out.transfers[0] == replace(out.created[0])
    assert out.created[0].created_at_us == NOW
    assert led.bal("a") == (0, 30, 0, 100)
    assert led.bal("b") == (0, 0, 0, 30)


def test_debiting_exactly_the_credits_is_allowed_and_one_more_is_rejected() -> None:
    led = funded(100)
    assert led.results(tr("t1", amount=101)) == [R.EXCEEDS_CREDITS]
    assert led.bal("a") == (0, 0, 0, 100)
    assert led.results(tr("t2", amount=100)) == [R.OK]
    assert led.results(tr("t3", amount=1)) == [R.EXCEEDS_CREDITS]


def test_pending_debits_count_against_the_credits() -> None:
    led = funded(100)
    assert led.results(tr("h", amount=60, flags=PENDING)) == [R.OK]
    assert led.results(tr("t1", amount=41)) == [R.EXCEEDS_CREDITS]
    assert led.results(tr("t2", amount=40)) == [R.OK]


def test_crediting_beyond_the_debits_is_rejected_with_exceeds_debits() -> None:
    led = Ledger(acct("a"), acct("limited", flags=NO_OVERCREDIT), acct("c"))
    assert led.results(tr("t0", "limited", "c", 50)) == [R.OK]
    assert led.results(tr("t1", "a", "limited", 51)) == [R.EXCEEDS_DEBITS]
    assert led.results(tr("t2", "a", "limited", 50)) == [R.OK]


def test_an_account_without_limits_may_go_negative() -> None:
    led = Ledger(acct("a"), acct("b"))
    assert led.results(tr("t1", amount=MAX_AMOUNT)) == [R.OK]
    assert led.bal("a") == (0, MAX_AMOUNT, 0, 0)


@pytest.mark.parametrize(
    ("transfer", "result"),
    [
        (tr(""), R.INVALID_ID),
        (tr("x" * 65), R.INVALID_ID),
        (tr("t:expired"), R.INVALID_ID),
        (tr("t", amount=0), R.AMOUNT_MUST_BE_POSITIVE),
        (tr("t", amount=-1), R.AMOUNT_MUST_BE_POSITIVE),
        (tr("t", amount=MAX_AMOUNT + 1), R.AMOUNT_TOO_LARGE),
        (tr("t", "a", "a"), R.ACCOUNTS_MUST_BE_DIFFERENT),
        (tr("t", currency="usd"), R.INVALID_CURRENCY),
        (tr("t", "nope", "b"), R.DEBIT_ACCOUNT_NOT_FOUND),
        (tr("t", "a", "nope"), R.CREDIT_ACCOUNT_NOT_FOUND),
        (tr("t", "other", "b"), R.DEBIT_ACCOUNT_NOT_FOUND),
        (tr("t", "a", "other"), R.CREDIT_ACCOUNT_NOT_FOUND),
        (tr("t", "a", "eur"), R.CURRENCY_MISMATCH),
        (tr("t", currency="EUR"), R.CURRENCY_MISMATCH),
        (tr("t", flags=replace(PENDING, post_pending=True)), R.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (tr("t", flags=replace(POST, void_pending=True)), R.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (tr("t", pending_id="p"), R.PENDING_ID_MUST_BE_EMPTY),
        (tr("t", flags=POST), R.PENDING_ID_REQUIRED),
        (tr("t", flags=VOID), R.PENDING_ID_REQUIRED),
        (tr("t", timeout_seconds=5), R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        (tr("t", flags=PENDING, timeout_seconds=-1), R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
        (tr("t", flags=PENDING, timeout_seconds=2**62), R.OVERFLOW),
    ],
)
def test_an_invalid_transfer_is_rejected_with_its_reason(
    transfer: Transfer, result: TransferResult
) -> None:
    led = Ledger(acct("a"), acct("b"), acct("eur", currency="EUR"), acct("other", tenant="t2"))
    before = dict(led.accounts)
    out = led.run(transfer)
    assert out.results == [result]
    assert out.created == []
    assert led.accounts == before


def test_sums_beyond_int64_answer_overflow() -> None:
    big = INT64_MAX - 5
    led = Ledger(acct("a"), acct("b", credits_posted=big))
    assert led.results(tr("t1", amount=5)) == [R.OK]
    assert led.results(tr("t2", amount=1)) == [R.OVERFLOW]
    assert led.bal("b") == (0, 0, 0, INT64_MAX)


def test_a_transfer_takes_the_callers_tenant_whatever_it_says() -> None:
    led = funded(100)
    out = led.run(tr("t1", tenant_id="ten_evil"))
    assert out.results == [R.OK]
    assert out.created[0].tenant_id == T


# --- two-phase transfers ------------------------------------------------------


def test_a_pending_transfer_reserves_and_posting_it_in_full_moves_the_money() -> None:
    led = funded(100)
    assert led.results(tr("h", amount=70, flags=PENDING)) == [R.OK]
    assert led.bal("a") == (70, 0, 0, 100)
    assert led.bal("b") == (0, 0, 70, 0)
    out = led.run(Transfer(id="p", pending_id="h", flags=POST))
    assert out.results == [R.OK]
    posted = out.created[0]
    assert (posted.amount, posted.debit_account_id, posted.credit_account_id) == (70, "a", "b")
    assert posted.currency == "USD"
    assert led.bal("a") == (0, 70, 0, 100)
    assert led.bal("b") == (0, 0, 0, 70)


def test_posting_part_of_a_hold_releases_the_rest() -> None:
    led = funded(100)
    led.run(tr("h", amount=70, flags=PENDING))
    assert led.results(tr("p", amount=25, flags=POST, pending_id="h")) == [R.OK]
    assert led.bal("a") == (0, 25, 0, 100)
    assert led.bal("b") == (0, 0, 0, 25)


def test_posting_exactly_the_pending_amount_is_allowed_and_one_more_is_rejected() -> None:
    led = funded(100)
    led.run(tr("h", amount=70, flags=PENDING))
    assert led.results(tr("p1", amount=71, flags=POST, pending_id="h")) == [
        R.AMOUNT_EXCEEDS_PENDING_AMOUNT
    ]
    assert led.results(tr("p2", amount=70, flags=POST, pending_id="h")) == [R.OK]


def test_voiding_a_hold_releases_it_in_full() -> None:
    led = funded(100)
    led.run(tr("h", amount=70, flags=PENDING))
    out = led.run(Transfer(id="v", pending_id="h", flags=VOID))
    assert out.results == [R.OK]
    assert out.created[0].amount == 70
    assert led.bal("a") == (0, 0, 0, 100)
    assert led.bal("b") == (0, 0, 0, 0)


def test_a_void_with_a_partial_amount_is_rejected() -> None:
    led = funded(100)
    led.run(tr("h", amount=70, flags=PENDING))
    assert led.results(tr("v", amount=30, flags=VOID, pending_id="h")) == [
        R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    ]
    assert led.results(tr("v", amount=70, flags=VOID, pending_id="h")) == [R.OK]


def test_a_hold_is_posted_or_voided_only_once() -> None:
    led = funded(100)
    led.run(tr("h1", amount=10, flags=PENDING), tr("h2", amount=10, flags=PENDING))
    led.run(Transfer(id="p1", pending_id="h1", flags=POST))
    led.run(Transfer(id="v2", pending_id="h2", flags=VOID))
    assert led.results(
        Transfer(id="x1", pending_id="h1", flags=VOID),
        Transfer(id="x2", pending_id="h1", flags=POST),
        Transfer(id="x3", pending_id="h2", flags=POST),
        Transfer(id="x4", pending_id="h2", flags=VOID),
    ) == [
        R.PENDING_TRANSFER_ALREADY_POSTED,
        R.PENDING_TRANSFER_ALREADY_POSTED,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
    ]


def test_posting_what_is_not_a_hold_is_rejected() -> None:
    led = funded(100)
    led.run(tr("single"))
    assert led.results(
        Transfer(id="p1", pending_id="missing", flags=POST),
        Transfer(id="p2", pending_id="single", flags=POST),
    ) == [R.PENDING_TRANSFER_NOT_FOUND, R.PENDING_TRANSFER_NOT_PENDING]


def test_a_hold_of_another_tenant_is_not_found() -> None:
    led = Ledger(acct("a"), acct("b"), acct("c", tenant="t2"), acct("d", tenant="t2"))
    led.run(tr("h", "c", "d", flags=PENDING), tenant="t2")
    assert led.results(Transfer(id="p", pending_id="h", flags=POST)) == [
        R.PENDING_TRANSFER_NOT_FOUND
    ]


def test_posting_with_other_accounts_than_the_hold_is_rejected() -> None:
    led = funded(100)
    led.run(tr("h", amount=10, flags=PENDING))
    assert led.results(
        tr("p1", "a", "bank", 0, flags=POST, pending_id="h"),
        tr("p2", "bank", "b", 0, flags=POST, pending_id="h"),
        tr("p3", "a", "b", 0, flags=POST, pending_id="h", currency="EUR"),
        tr("p4", "a", "b", 0, flags=POST, pending_id="h"),
    ) == [
        R.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS,
        R.PENDING_TRANSFER_HAS_DIFFERENT_ACCOUNTS,
        R.CURRENCY_MISMATCH,
        R.OK,
    ]


def test_a_hold_cannot_be_posted_at_or_after_its_expiry() -> None:
    led = funded(100)
    led.run(tr("h1", amount=10, flags=PENDING, timeout_seconds=60))
    led.run(tr("h2", amount=10, flags=PENDING, timeout_seconds=60))
    led.now = NOW + 60_000_000 - 1
    assert led.results(Transfer(id="p1", pending_id="h1", flags=POST)) == [R.OK]
    led.now = NOW + 60_000_000
    assert led.results(Transfer(id="p2", pending_id="h2", flags=POST)) == [
        R.PENDING_TRANSFER_EXPIRED
    ]


def test_expiry_voids_an_expired_hold_with_a_real_transfer() -> None:
    led = funded(100)
    led.run(tr("h", amount=40, flags=PENDING, timeout_seconds=10, reference="pay_1"))
    led.run(tr("h_forever", amount=5, flags=PENDING))
    led.now = NOW + 9_000_000
    assert led.expire().created == []
    led.now = NOW + 10_000_000
    out = led.expire()
    assert [t.id for t in out.created] == ["h:expired"]
    void = out.created[0]
    assert (void.flags, void.code, void.pending_id) == (VOID, "expiry", "h")
    assert (void.tenant_id, void.reference, void.amount) == (T, "pay_1", 40)
    assert led.bal("a") == (5, 0, 0, 100)
    assert led.expire().created == []
    assert led.results(Transfer(id="p", pending_id="h", flags=POST)) == [R.PENDING_TRANSFER_EXPIRED]


# --- linked chains ------------------------------------------------------------


def test_a_linked_chain_succeeds_as_one() -> None:
    led = funded(100)
    out = led.run(
        tr("t1", "a", "b", 60, flags=LINKED), tr("t2", "b", "bank", 10), tr("t3", "a", "b", 5)
    )
    assert out.results == [R.OK, R.OK, R.OK]
    assert led.bal("a") == (0, 65, 0, 100)


def test_a_failing_link_rolls_back_the_whole_chain_but_not_the_rest_of_the_batch() -> None:
    led = funded(100)
    out = led.run(
        tr("t0", "a", "b", 1),
        tr("t1", "a", "b", 50, flags=LINKED),
        tr("t2", "b", "bank", 50, flags=LINKED),
        tr("t3", "a", "b", 50, flags=LINKED),  # 1 + 50 + 50 > 100: fails
        tr("t4", "a", "bank", 1),
        tr("t5", "a", "b", 99),  # sees t0 but not the failed chain
    )
    assert out.results == [
        R.OK,
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_FAILED,
        R.EXCEEDS_CREDITS,
        R.LINKED_EVENT_FAILED,
        R.OK,
    ]
    assert [t.id for t in out.created] == ["t0", "t5"]
    assert led.bal("a") == (0, 100, 0, 100)
    assert led.bal("b") == (0, 0, 0, 100)
    assert led.bal("bank") == (0, 100, 0, 0)


def test_ids_of_a_failed_chain_can_be_used_again_later_in_the_batch() -> None:
    led = funded(100)
    out = led.run(tr("t1", amount=10, flags=LINKED), tr("t2", amount=1000), tr("t1", amount=20))
    assert out.results == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS, R.OK]
    assert led.bal("a") == (0, 20, 0, 100)


def test_a_hold_posted_in_a_failed_chain_is_still_pending() -> None:
    led = funded(100)
    led.run(tr("h", amount=10, flags=PENDING))
    out = led.run(
        Transfer(id="p", pending_id="h", flags=replace(POST, linked=True)),
        tr("bad", "a", "nope", 1),
        Transfer(id="p2", pending_id="h", flags=POST),
    )
    assert out.results == [R.LINKED_EVENT_FAILED, R.CREDIT_ACCOUNT_NOT_FOUND, R.OK]
    assert out.created[0].id == "p2"


def test_a_batch_ending_inside_a_chain_answers_chain_open() -> None:
    led = funded(100)
    out = led.run(tr("t0", amount=1), tr("t1", amount=1, flags=LINKED), tr("t2", flags=LINKED))
    assert out.results == [R.OK, R.LINKED_EVENT_CHAIN_OPEN, R.LINKED_EVENT_CHAIN_OPEN]
    assert [t.id for t in out.created] == ["t0"]


def test_a_retried_chain_answers_exists_for_every_member() -> None:
    led = funded(100)
    chain = (tr("t1", amount=5, flags=LINKED), tr("t2", amount=6))
    assert led.results(*chain) == [R.OK, R.OK]
    assert led.results(*chain) == [R.EXISTS, R.EXISTS]
    assert led.bal("a") == (0, 11, 0, 100)


# --- idempotency and intra-batch visibility ---------------------------------------


def test_later_items_see_the_effects_of_earlier_items_of_the_batch() -> None:
    led = Ledger(acct("a", flags=NO_OVERDRAFT), acct("b", flags=NO_OVERDRAFT), acct("bank"))
    out = led.run(
        tr("t0", "a", "b", 1),  # a is empty: rejected
        tr("t1", "bank", "a", 10),
        tr("t2", "a", "b", 10),
        tr("t3", "b", "a", 10),
        tr("h", "a", "b", 10, flags=PENDING),
        Transfer(id="p", pending_id="h", flags=POST),
    )
    assert out.results == [R.EXCEEDS_CREDITS, R.OK, R.OK, R.OK, R.OK, R.OK]
    assert led.bal("b") == (0, 10, 0, 20)


FIRST = tr("t", "a", "b", 10, code="c", reference="r")


@pytest.mark.parametrize(
    ("again", "result"),
    [
        (FIRST, R.EXISTS),
        (replace(FIRST, flags=PENDING), R.EXISTS_WITH_DIFFERENT_FLAGS),
        (replace(FIRST, flags=VOID, amount=0, code="d"), R.EXISTS_WITH_DIFFERENT_FLAGS),
        (replace(FIRST, pending_id="h"), R.EXISTS_WITH_DIFFERENT_PENDING_ID),
        (replace(FIRST, timeout_seconds=1, amount=1), R.EXISTS_WITH_DIFFERENT_TIMEOUT),
        (
            replace(FIRST, debit_account_id="bank", amount=1),
            R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID,
        ),
        (
            replace(FIRST, credit_account_id="bank", amount=1),
            R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID,
        ),
        (replace(FIRST, amount=11, code="d"), R.EXISTS_WITH_DIFFERENT_AMOUNT),
        (replace(FIRST, currency="EUR", code="d"), R.EXISTS_WITH_DIFFERENT_CURRENCY),
        (replace(FIRST, code="d", reference="s"), R.EXISTS_WITH_DIFFERENT_CODE),
        (replace(FIRST, reference="s"), R.EXISTS_WITH_DIFFERENT_REFERENCE),
    ],
)
def test_a_transfer_sent_again_answers_exists_or_its_first_difference(
    again: Transfer, result: TransferResult
) -> None:
    led = funded(100)
    first = FIRST
    assert led.results(first) == [R.OK]
    later = led.run(again)
    assert later.results == [result]
    assert later.created == []
    assert led.bal("a") == (0, 10, 0, 100)
    # The same answers within one batch.
    led2 = funded(100)
    assert led2.results(first, again) == [R.OK, result]


def test_a_retried_post_with_amount_zero_matches_the_resolved_full_amount() -> None:
    led = funded(100)
    led.run(tr("h1", amount=10, flags=PENDING), tr("h2", amount=10, flags=PENDING))
    full = Transfer(id="p1", pending_id="h1", flags=POST)
    part = Transfer(id="p2", pending_id="h2", flags=POST, amount=4)
    assert led.results(full, part) == [R.OK, R.OK]
    assert led.results(
        full,
        replace(full, amount=10, debit_account_id="a", credit_account_id="b", currency="USD"),
        replace(full, amount=9),
        replace(part, amount=0),
        part,
    ) == [
        R.EXISTS,
        R.EXISTS,
        R.EXISTS_WITH_DIFFERENT_AMOUNT,
        R.EXISTS_WITH_DIFFERENT_AMOUNT,
        R.EXISTS,
    ]


def test_a_transfer_id_of_another_tenant_answers_tenant_mismatch() -> None:
    led = Ledger(acct("a"), acct("b"), acct("c", tenant="t2"), acct("d", tenant="t2"))
    assert led.results(tr("t", "c", "d"), tenant="t2") == [R.OK]
    assert led.results(tr("t", "a", "b")) == [R.TENANT_MISMATCH]


def test_an_accounts_balances_follow_its_posted_and_pending_sides() -> None:
    a = Account(
        id="a", currency="USD", debits_pending=1_000, debits_posted=2_500,
        credits_pending=300, credits_posted=10_000,
    )  # fmt: skip
    assert a.balance == Balance(available=6_500, pending=-700, posted=7_500)


def test_an_empty_account_has_a_zero_balance() -> None:
    assert Account(id="a", currency="USD").balance == Balance(0, 0, 0)
