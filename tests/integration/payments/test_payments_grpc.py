"""The payments gRPC server, built by app.create, against the real accounts and risk services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from paymesh.accounts import app as accounts_app
from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.accounts.v1.accounts_pb2_grpc import AccountsStub
from paymesh.contracts.events import TOPIC_PAYMENTS, Event
from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.contracts.payments.v1.payments_pb2_grpc import PaymentsStub
from paymesh.payments import app as payments_app
from paymesh.platform.bus import InProcessBus
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import error_code, open_channel
from paymesh.risk import app as risk_app
from paymesh.settings import Settings

ALICE = Caller(tenant_id="ten_alice", client_id="cli_alice").metadata()
MALLORY = Caller(tenant_id="ten_mallory", client_id="cli_mallory").metadata()


def _settings(tmp_path: Path, ports: dict[str, int]) -> Settings:
    # Every listener on a port picked beforehand: an admin listener on port 0 could be
    # given one of the ports picked for the services.
    admin = f"127.0.0.1:{ports['admin']}"
    return Settings(
        var_dir=tmp_path,
        accounts={"listen": f"127.0.0.1:{ports['accounts']}", "admin_listen": admin},
        risk={"listen": f"127.0.0.1:{ports['risk']}", "admin_listen": admin},
        payments={
            "listen": f"127.0.0.1:{ports['payments']}",
            "resume_interval_s": 0.1,
            "admin_listen": admin,
        },
    )


@dataclass
class Platform:
    payments: PaymentsStub
    accounts: AccountsStub
    events: list[Event]


@pytest.fixture
async def platform(tmp_path: Path, ports: dict[str, int]) -> AsyncIterator[Platform]:
    """accounts, risk and payments on loopback ports, with SQLite under tmp_path."""
    settings = _settings(tmp_path, ports)
    bus = InProcessBus()
    events: list[Event] = []

    async def collect(event: Event) -> None:
        events.append(event)

    bus.subscribe(TOPIC_PAYMENTS, "test", collect)
    await bus.start()
    runtimes = []
    for app in (accounts_app, risk_app, payments_app):
        await app.migrate(settings)
        runtime = app.create(settings, bus=bus)
        await runtime.start()
        runtimes.append(runtime)
    payments_channel = open_channel(settings.payments.target)
    accounts_channel = open_channel(settings.accounts.target)
    try:
        yield Platform(PaymentsStub(payments_channel), AccountsStub(accounts_channel), events)
    finally:
        await payments_channel.close()
        await accounts_channel.close()
        for runtime in reversed(runtimes):
            await runtime.stop()
        await bus.stop()


async def _open(accounts: AccountsStub, *ids: str, wait_for_ready: bool = False) -> None:
    response = await accounts.CreateAccounts(
        apb.CreateAccountsRequest(
            accounts=[
                apb.Account(
                    id=i,
                    currency="USD",
                    code="customer",
                    flags=apb.AccountFlags(debits_must_not_exceed_credits=True),
                )
                for i in ids
            ]
        ),
        metadata=ALICE,
        wait_for_ready=wait_for_ready,
        timeout=30,
    )
    assert list(response.results) == [apb.CREATE_ACCOUNT_RESULT_OK] * len(ids)


async def _posted(accounts: AccountsStub, account_id: str) -> int:
    response = await accounts.LookupAccounts(
        apb.LookupAccountsRequest(ids=[account_id]), metadata=ALICE
    )
    [a] = response.accounts
    return a.credits_posted - a.debits_posted


def _payment(pid: str, amount: int, method: pb.CaptureMethod.ValueType) -> pb.CreatePaymentRequest:
    return pb.CreatePaymentRequest(
        id=pid,
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=amount,
        currency="USD",
        capture_method=method,
        context=pb.PaymentContext(ip="203.0.113.9", country="US"),
    )


async def test_top_up_pay_capture_and_refund_over_grpc(platform: Platform) -> None:
    payments, accounts = platform.payments, platform.accounts
    await _open(accounts, "acct_payer", "acct_payee")

    topup = await payments.CreateTopup(
        pb.CreateTopupRequest(id="tu_1", account_id="acct_payer", amount=10_000, currency="USD"),
        metadata=ALICE,
    )
    assert (topup.status, topup.tenant_id) == ("succeeded", "ten_alice")
    assert await _posted(accounts, "acct_payer") == 10_000

    auto = await payments.CreatePayment(
        _payment("pay_auto", 1_000, pb.CAPTURE_METHOD_AUTOMATIC), metadata=ALICE
    )
    assert (auto.status, auto.amount_captured, auto.risk.decision) == (
        "succeeded",
        1_000,
        "approve",
    )

    manual = await payments.CreatePayment(
        _payment("pay_manual", 2_000, pb.CAPTURE_METHOD_MANUAL), metadata=ALICE
    )
    assert manual.status == "requires_capture"
    captured = await payments.CapturePayment(
        pb.CapturePaymentRequest(id="pay_manual", amount=1_500), metadata=ALICE
    )
    assert (captured.status, captured.amount_captured) == ("succeeded", 1_500)

    refund = await payments.CreateRefund(
        pb.CreateRefundRequest(id="re_1", payment_id="pay_auto", amount=400), metadata=ALICE
    )
    assert (refund.status, refund.amount) == ("succeeded", 400)
    got = await payments.GetPayment(pb.GetPaymentRequest(id="pay_auto"), metadata=ALICE)
    assert got.amount_refunded == 400

    assert await _posted(accounts, "acct_payer") == 10_000 - 1_000 - 1_500 + 400
    assert await _posted(accounts, "acct_payee") == 1_000 + 1_500 - 400

    listed = await payments.ListPayments(pb.ListPaymentsRequest(limit=1), metadata=ALICE)
    assert ([p.id for p in listed.payments], listed.has_more) == (["pay_manual"], True)

    wanted = {
        "topup.succeeded",
        "payment.succeeded",
        "payment.requires_capture",
        "refund.succeeded",
    }
    for _ in range(200):  # the relay publishes soon after commit
        if wanted <= {e.type for e in platform.events}:
            break
        await asyncio.sleep(0.02)
    assert wanted <= {e.type for e in platform.events}
    assert all(e.tenant == "ten_alice" for e in platform.events)


async def test_a_top_up_is_reversed_once_over_grpc_and_the_ledger_pays_it_back(
    platform: Platform,
) -> None:
    payments, accounts = platform.payments, platform.accounts
    await _open(accounts, "acct_payer")
    await payments.CreateTopup(
        pb.CreateTopupRequest(id="tu_1", account_id="acct_payer", amount=3_000, currency="USD"),
        metadata=ALICE,
    )
    reverse = pb.ReverseTopupRequest(topup_id="tu_1")
    reversal = await payments.ReverseTopup(reverse, metadata=ALICE)
    assert (reversal.status, reversal.topup_id, reversal.amount, reversal.tenant_id) == (
        "succeeded",
        "tu_1",
        3_000,
        "ten_alice",
    )
    assert await payments.ReverseTopup(reverse, metadata=ALICE) == reversal
    assert await _posted(accounts, "acct_payer") == 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await payments.ReverseTopup(reverse, metadata=MALLORY)
    assert (info.value.code(), error_code(info.value)) == (grpc.StatusCode.NOT_FOUND, "not_found")
    for _ in range(200):  # the relay publishes soon after commit
        if "topup_reversal.succeeded" in {e.type for e in platform.events}:
            break
        await asyncio.sleep(0.02)
    [event] = [e for e in platform.events if e.type == "topup_reversal.succeeded"]
    assert (event.subject, event.data["object"], event.data["amount"]) == (
        "tu_1",
        "topup_reversal",
        3_000,
    )


async def test_another_tenant_gets_not_found(platform: Platform) -> None:
    payments, accounts = platform.payments, platform.accounts
    await _open(accounts, "acct_payer", "acct_payee")
    await payments.CreateTopup(
        pb.CreateTopupRequest(id="tu_1", account_id="acct_payer", amount=5_000, currency="USD"),
        metadata=ALICE,
    )
    await payments.CreatePayment(_payment("pay_1", 1_000, pb.CAPTURE_METHOD_MANUAL), metadata=ALICE)
    calls = [
        payments.GetPayment(pb.GetPaymentRequest(id="pay_1"), metadata=MALLORY),
        payments.CapturePayment(pb.CapturePaymentRequest(id="pay_1"), metadata=MALLORY),
        payments.CancelPayment(pb.CancelPaymentRequest(id="pay_1"), metadata=MALLORY),
        payments.GetTopup(pb.GetTopupRequest(id="tu_1"), metadata=MALLORY),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_code(info.value) == "not_found"
    listed = await payments.ListPayments(pb.ListPaymentsRequest(), metadata=MALLORY)
    assert list(listed.payments) == []


async def test_errors_carry_status_and_stable_code(platform: Platform) -> None:
    payments, accounts = platform.payments, platform.accounts
    await _open(accounts, "acct_payer", "acct_payee")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await payments.CreatePayment(
            _payment("pay_1", 0, pb.CAPTURE_METHOD_AUTOMATIC), metadata=ALICE
        )
    assert (info.value.code(), error_code(info.value)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await payments.GetPayment(pb.GetPaymentRequest(id="pay_1"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

    broke = await payments.CreatePayment(
        _payment("pay_2", 1_000, pb.CAPTURE_METHOD_MANUAL), metadata=ALICE
    )
    assert (broke.status, broke.failure_code) == ("failed", "insufficient_funds")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await payments.CapturePayment(pb.CapturePaymentRequest(id="pay_2"), metadata=ALICE)
    assert (info.value.code(), error_code(info.value)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "invalid_state",
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await payments.CreatePayment(
            _payment("pay_2", 999, pb.CAPTURE_METHOD_MANUAL), metadata=ALICE
        )
    assert (info.value.code(), error_code(info.value)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "id_reused",
    )


async def test_a_saga_waits_for_an_unreachable_ledger_and_finishes_when_it_returns(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    settings = _settings(tmp_path, ports)
    bus = InProcessBus()
    for app in (accounts_app, risk_app, payments_app):
        await app.migrate(settings)
    # The payment is authorised while accounts is up (its accounts pass the
    # check); accounts then goes down before the capture, so only reachability
    # is in question.
    before = accounts_app.create(settings, bus=bus)
    risk = risk_app.create(settings, bus=bus)
    payments = payments_app.create(settings, bus=bus)
    accounts = accounts_app.create(settings, bus=bus)
    await before.start()
    await risk.start()
    await payments.start()
    channel = open_channel(settings.payments.target)
    opening = open_channel(settings.accounts.target)
    try:
        await _open(AccountsStub(opening), "acct_payer", "acct_payee", wait_for_ready=True)
        stub = PaymentsStub(channel)
        await stub.CreateTopup(
            pb.CreateTopupRequest(id="tu_1", account_id="acct_payer", amount=700, currency="USD"),
            metadata=ALICE,
        )
        manual = _payment("pay_1", 700, pb.CAPTURE_METHOD_MANUAL)
        assert (await stub.CreatePayment(manual, metadata=ALICE)).status == "requires_capture"
        await before.stop()
        capture = pb.CapturePaymentRequest(id="pay_1", request_id="capreq_1")
        payment = await stub.CapturePayment(capture, metadata=ALICE)
        assert payment.status == "requires_capture"  # accounts is down: the step stays recorded
        await accounts.start()
        for _ in range(1_000):  # the Resumer retries with backoff
            payment = await stub.GetPayment(pb.GetPaymentRequest(id="pay_1"), metadata=ALICE)
            if payment.status != "requires_capture":
                break
            await asyncio.sleep(0.05)
        assert (payment.status, payment.amount_captured) == ("succeeded", 700)
        assert await _posted(AccountsStub(opening), "acct_payee") == 700
    finally:
        await channel.close()
        await opening.close()
        await payments.stop()
        await accounts.stop()
        await before.stop()
        await risk.stop()


async def test_a_command_sent_while_the_ledger_is_unreachable_is_unavailable_and_not_recorded(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    settings = _settings(tmp_path, ports)
    bus = InProcessBus()
    for app in (risk_app, payments_app):
        await app.migrate(settings)
    risk = risk_app.create(settings, bus=bus)
    payments = payments_app.create(settings, bus=bus)
    await risk.start()
    await payments.start()
    channel = open_channel(settings.payments.target)
    try:
        stub = PaymentsStub(channel)
        topup = pb.CreateTopupRequest(id="tu_1", account_id="acct_payer", amount=7, currency="USD")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.CreateTopup(topup, metadata=ALICE)
        # The accounts cannot be checked: the client may send the command again.
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetTopup(pb.GetTopupRequest(id="tu_1"), metadata=ALICE)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await channel.close()
        await payments.stop()
        await risk.stop()


async def test_accounts_the_caller_lacks_or_in_another_currency_are_refused_with_their_codes(
    platform: Platform,
) -> None:
    payments, accounts = platform.payments, platform.accounts
    await _open(accounts, "acct_payer", "acct_payee")
    await accounts.CreateAccounts(
        apb.CreateAccountsRequest(
            accounts=[apb.Account(id="acct_mallory", currency="USD", code="customer")]
        ),
        metadata=MALLORY,
    )
    await accounts.CreateAccounts(
        apb.CreateAccountsRequest(
            accounts=[apb.Account(id="acct_euro", currency="EUR", code="customer")]
        ),
        metadata=ALICE,
    )
    answers = []
    for payee in ("acct_mallory", "acct_nobody"):
        request = _payment("pay_1", 100, pb.CAPTURE_METHOD_AUTOMATIC)
        request.payee_account_id = payee
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await payments.CreatePayment(request, metadata=ALICE)
        answers.append((info.value.code(), error_code(info.value), info.value.details()))
    assert answers[0] == answers[1]
    assert answers[0] == (
        grpc.StatusCode.NOT_FOUND,
        "account_not_found",
        "no such account: payee_account_id",
    )
    transfer = pb.CreateTransferRequest(
        id="tr_1", from_account_id="acct_payer", to_account_id="acct_euro", amount=1, currency="USD"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await payments.CreateTransfer(transfer, metadata=ALICE)
    assert (info.value.code(), error_code(info.value), info.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "currency_mismatch",
        "to_account_id: the account holds EUR, the request is in USD",
    )
    listed = await payments.ListPayments(pb.ListPaymentsRequest(), metadata=ALICE)
    assert list(listed.payments) == []
    events = await payments.ListEvents(pb.ListEventsRequest(), metadata=ALICE)
    assert list(events.events) == []


async def test_a_capture_or_cancel_sent_again_with_its_request_id_is_answered_not_refused(
    platform: Platform,
) -> None:
    payments, accounts = platform.payments, platform.accounts
    await _open(accounts, "acct_payer", "acct_payee")
    await payments.CreateTopup(
        pb.CreateTopupRequest(id="tu_1", account_id="acct_payer", amount=5_000, currency="USD"),
        metadata=ALICE,
    )
    for pid in ("pay_1", "pay_2"):
        await payments.CreatePayment(_payment(pid, 1_000, pb.CAPTURE_METHOD_MANUAL), metadata=ALICE)
    capture = pb.CapturePaymentRequest(id="pay_1", amount=600, request_id="capreq_1")
    first = await payments.CapturePayment(capture, metadata=ALICE)
    again = await payments.CapturePayment(capture, metadata=ALICE)
    assert (again.status, again.amount_captured) == ("succeeded", 600)
    assert again == first
    cancel = pb.CancelPaymentRequest(id="pay_2", request_id="canreq_1")
    assert (await payments.CancelPayment(cancel, metadata=ALICE)).status == "canceled"
    assert (await payments.CancelPayment(cancel, metadata=ALICE)).status == "canceled"
    assert await _posted(accounts, "acct_payee") == 600

    others = [
        payments.CapturePayment(
            pb.CapturePaymentRequest(id="pay_1", request_id="capreq_2"), metadata=ALICE
        ),
        payments.CancelPayment(
            pb.CancelPaymentRequest(id="pay_2", request_id="canreq_2"), metadata=ALICE
        ),
    ]
    for call in others:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert (info.value.code(), error_code(info.value)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "invalid_state",
        )
