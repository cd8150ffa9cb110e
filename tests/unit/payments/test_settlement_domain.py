"""The settlement and reconciliation rules, pure: lines, carry-forward, ids, cutoffs,
matching and write-off directions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.payments.domain.reconciliation import (
    Candidate,
    Entry,
    Result,
    Tolerance,
    lookup_key,
    match_entry,
    validate_resolution,
    write_off_direction,
)
from paymesh.payments.domain.settlement import (
    BankDetails,
    ItemType,
    LineStatus,
    SettlementItem,
    carried_out,
    lines_of,
    payout_id_of,
    run_id_of,
    validate_cutoff,
)
from paymesh.payments.errors import CutoffBeforeLastRun, InvalidRequest

BANK = BankDetails("DE89370400440532013000", "COBADEFFXXX", "Merchant")
DAY = 86_400_000_000


def capture(pid: str, account: str, gross: int, fee: int = 0) -> SettlementItem:
    return SettlementItem(pid, ItemType.CAPTURE, account, pid, "EUR", gross, fee, 1, (pid,))


def refund(rid: str, account: str, amount: int) -> SettlementItem:
    return SettlementItem(rid, ItemType.REFUND, account, "pay_x", "EUR", amount, 0, 1, (rid,))


def test_a_line_sums_gross_refunds_and_fees_into_its_net_and_pays_it_out() -> None:
    items = [
        capture("p1", "m1", 10_000, 130),
        capture("p2", "m1", 5_000, 80),
        refund("r1", "m1", 2_000),
    ]
    [line] = lines_of("sr_1", items, {}, {"m1": BANK}, approval=False)
    assert (line.gross, line.refunds, line.fees, line.carried_in, line.net) == (
        15_000, 2_000, 210, 0, 12_790,
    )  # fmt: skip
    assert line.status is LineStatus.PAYOUT
    assert line.payout_id == payout_id_of("sr_1", "m1")
    assert line.bank == BANK


def test_a_negative_net_is_carried_forward_and_the_next_run_starts_from_it() -> None:
    first = lines_of(
        "sr_1",
        [capture("p1", "m1", 1_000), refund("r1", "m1", 3_000)],
        {},
        {"m1": BANK},
        approval=False,
    )
    assert [(x.net, x.status, x.payout_id) for x in first] == [
        (-2_000, LineStatus.CARRIED_FORWARD, None)
    ]
    carried = carried_out(first)
    assert carried == {"m1": -2_000}
    [second] = lines_of("sr_2", [capture("p2", "m1", 5_000)], carried, {"m1": BANK}, approval=False)
    assert (second.carried_in, second.net, second.status) == (-2_000, 3_000, LineStatus.PAYOUT)


def test_an_account_without_bank_details_is_carried_forward_not_paid() -> None:
    [line] = lines_of("sr_1", [capture("p1", "m1", 1_000)], {}, {"m1": None}, approval=False)
    assert (line.status, line.payout_id) == (LineStatus.NO_BANK_ACCOUNT, None)
    assert carried_out([line]) == {"m1": 1_000}


def test_a_run_needing_approval_names_its_payouts_but_waits() -> None:
    [line] = lines_of("sr_1", [capture("p1", "m1", 1_000)], {}, {"m1": BANK}, approval=True)
    assert line.status is LineStatus.AWAITING_APPROVAL
    assert line.payout_id == payout_id_of("sr_1", "m1")
    assert carried_out([line]) == {}


def test_an_account_only_carried_in_still_gets_a_line() -> None:
    [line] = lines_of("sr_2", [], {"m9": -500}, {"m9": BANK}, approval=False)
    assert (line.account_id, line.net, line.status) == ("m9", -500, LineStatus.CARRIED_FORWARD)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["m1", "m2", "m3"]),
            st.booleans(),
            st.integers(1, 10**9),
            st.integers(0, 10**6),
        ),
        max_size=40,
    )
)
def test_the_lines_account_for_every_item_exactly_once(
    raw: list[tuple[str, bool, int, int]],
) -> None:
    items = [
        capture(f"p{i}", a, g, min(f, g)) if is_capture else refund(f"r{i}", a, g)
        for i, (a, is_capture, g, f) in enumerate(raw)
    ]
    lines = lines_of("sr", items, {}, dict.fromkeys(["m1", "m2", "m3"], BANK), approval=False)
    assert sum(x.net for x in lines) == sum(i.net for i in items)
    assert sorted(x.account_id for x in lines) == sorted({i.account_id for i in items})
    for x in lines:
        assert (x.payout_id is not None) == (x.net > 0)


def test_ids_are_derived_so_a_run_and_its_payouts_are_made_once() -> None:
    assert run_id_of("t", "EUR", 5) == run_id_of("t", "EUR", 5)
    assert (
        len(
            {
                run_id_of("t", "EUR", 5),
                run_id_of("t", "EUR", 6),
                run_id_of("u", "EUR", 5),
                run_id_of("t", "USD", 5),
            }
        )
        == 4
    )
    assert payout_id_of("sr_1", "m1") != payout_id_of("sr_1", "m2")
    assert len(payout_id_of("sr_" + "f" * 24, "m" * 64)) <= 64


def test_a_cutoff_in_the_future_or_before_the_last_run_is_refused() -> None:
    validate_cutoff(100, 100, 100)  # the last run's own cutoff: the same run, answered again
    with pytest.raises(InvalidRequest, match="future"):
        validate_cutoff(101, 100, None)
    with pytest.raises(CutoffBeforeLastRun):
        validate_cutoff(50, 100, 60)
    with pytest.raises(InvalidRequest):
        validate_cutoff(0, 100, None)


# -- reconciliation --------------------------------------------------------------------

PAYOUT = Candidate("payout", "po_1", 10_000, "EUR", "succeeded", created_at_us=10 * DAY)


def debit(
    amount: int = 10_000, *, day: int = 10, e2e: str = "po_1", currency: str = "EUR"
) -> Entry:
    return Entry(amount, currency, False, day * DAY, e2e, "", "")


def test_a_payout_booked_as_sent_matches() -> None:
    assert lookup_key(debit()) == ("payout", "po_1")
    assert match_entry(debit(), PAYOUT, Tolerance()).result is Result.MATCHED


def test_another_amount_or_currency_is_a_mismatch_within_tolerance_a_match() -> None:
    assert match_entry(debit(9_999), PAYOUT, Tolerance()).result is Result.AMOUNT_MISMATCH
    assert match_entry(debit(9_999), PAYOUT, Tolerance(amount=1)).result is Result.MATCHED
    # Another currency is not this payout at all: money the ledger does not know.
    assert match_entry(debit(currency="USD"), PAYOUT, Tolerance()).result is Result.UNMATCHED_BANK


def test_a_booking_outside_the_date_tolerance_or_of_an_unknown_payout_is_unmatched() -> None:
    assert match_entry(debit(day=14), PAYOUT, Tolerance(days=3)).result is Result.UNMATCHED_BANK
    assert match_entry(debit(day=13), PAYOUT, Tolerance(days=3)).result is Result.MATCHED
    assert match_entry(debit(day=8), PAYOUT, Tolerance(days=3)).result is Result.UNMATCHED_BANK
    assert match_entry(debit(), None, Tolerance()).result is Result.UNMATCHED_BANK


def test_a_payout_booked_twice_matches_once() -> None:
    again = Candidate("payout", "po_1", 10_000, "EUR", "succeeded", 10 * DAY, already_matched=True)
    assert match_entry(debit(), again, Tolerance()).result is Result.UNMATCHED_BANK


def test_a_failed_payout_is_nothing_the_bank_could_have_sent() -> None:
    failed = Candidate("payout", "po_1", 10_000, "EUR", "failed", 10 * DAY)
    assert match_entry(debit(), failed, Tolerance()).result is Result.UNMATCHED_BANK


def test_a_credit_with_a_return_reason_returns_its_payout() -> None:
    back = Entry(10_000, "EUR", True, 11 * DAY, "po_1", "", "AC04")
    assert lookup_key(back) == ("payout", "po_1")
    match = match_entry(back, PAYOUT, Tolerance())
    assert (match.result, match.object_id) == (Result.RETURNED, "po_1")


def test_only_a_first_whole_return_in_the_payouts_currency_returns_it() -> None:
    def back(amount: int = 10_000, currency: str = "EUR") -> Entry:
        return Entry(amount, currency, True, 11 * DAY, "po_1", "", "AC04")

    assert match_entry(back(1), PAYOUT, Tolerance()).result is Result.UNMATCHED_BANK
    assert match_entry(back(currency="JPY"), PAYOUT, Tolerance()).result is Result.UNMATCHED_BANK
    again = Candidate("payout", "po_1", 10_000, "EUR", "succeeded", 10 * DAY, already_returned=True)
    assert match_entry(back(), again, Tolerance()).result is Result.UNMATCHED_BANK


def test_a_booking_of_a_payout_whose_absence_was_written_off_is_not_matched() -> None:
    off = Candidate("payout", "po_1", 10_000, "EUR", "succeeded", 10 * DAY, written_off=True)
    assert match_entry(debit(), off, Tolerance()).result is Result.UNMATCHED_BANK


def test_other_credits_are_topups_and_debits_without_end_to_end_id_reversals() -> None:
    assert lookup_key(Entry(5, "EUR", True, 0, "", "tu_1", "")) == ("topup", "tu_1")
    assert lookup_key(Entry(5, "EUR", True, 0, "tu_2", "x", "")) == ("topup", "tu_2")
    assert lookup_key(Entry(5, "EUR", False, 0, "", "tu_3", "")) == ("topup_reversal", "tu_3")


def test_a_write_off_moves_what_the_bank_holds_more_or_less_than_the_ledger() -> None:
    # An unknown credit: the bank holds more. An unknown debit: less.
    assert write_off_direction(Result.UNMATCHED_BANK, True, 700, 0) == 700
    assert write_off_direction(Result.UNMATCHED_BANK, False, 700, 0) == -700
    # A payout the bank never sent: it still holds the money.
    assert write_off_direction(Result.UNMATCHED_LEDGER, False, 900, 900) == 900
    # The bank sent 120 where the ledger paid 100: it holds 20 less.
    assert write_off_direction(Result.AMOUNT_MISMATCH, False, 120, 100) == -20
    with pytest.raises(InvalidRequest):
        write_off_direction(Result.RETURNED, True, 100, 100)


def test_a_resolution_needs_a_known_action_and_match_to_its_object() -> None:
    validate_resolution("ignore", "", "")
    with pytest.raises(InvalidRequest):
        validate_resolution("delete", "", "")
    with pytest.raises(InvalidRequest):
        validate_resolution("match_to", "", "")
    with pytest.raises(InvalidRequest):
        validate_resolution("ignore", "x" * 1001, "")
