"""The accounts service over a real gRPC channel, built by app.create on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from paymesh.accounts import app
from paymesh.contracts.accounts.v1 import accounts_pb2 as pb
from paymesh.contracts.accounts.v1 import accounts_pb2_grpc as pb_grpc
from paymesh.contracts.events import TOPIC_ACCOUNTS, Event
from paymesh.platform.bus import InProcessBus
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import error_code, open_channel
from paymesh.settings import Settings
from tests.fakes.clock import FixedClock

ALICE = Caller(tenant_id="ten_alice", client_id="cli_a", scopes=frozenset({"accounts:write"}))
MALLORY = Caller(tenant_id="ten_mallory", client_id="cli_m")


@dataclass
class Running:
    stub: pb_grpc.AccountsAsyncStub
    clock: FixedClock
    events: list[Event]


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Running]:
    settings = Settings(
        var_dir=tmp_path,
        accounts={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}",
            "listen": "127.0.0.1:0",
        },
    )
    await app.migrate(settings)
    bus = InProcessBus()
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    bus.subscribe(TOPIC_ACCOUNTS, "test", record)
    await bus.start()
    clock = FixedClock()
    runtime = app.create(settings, bus=bus, clock=clock, expiry_interval_s=0.01)
    await runtime.start()
    channel = open_channel(f"127.0.0.1:{runtime.port}")
    try:
        yield Running(pb_grpc.AccountsStub(channel), clock, seen)
    finally:
        await channel.close()
        await runtime.stop()
        await bus.stop()


def md(caller: Caller) -> tuple[tuple[str, str], ...]:
    return caller.metadata()


def account(id_: str, **kw: Any) -> pb.Account:
    return pb.Account(id=id_, currency="USD", **kw)


def transfer(id_: str, dr: str, cr: str, amount: int, **kw: Any) -> pb.Transfer:
    return pb.Transfer(
        id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, currency="USD", **kw
    )


async def open_alice(stub: pb_grpc.AccountsAsyncStub) -> None:
    no_overdraft = pb.AccountFlags(debits_must_not_exceed_credits=True)
    out = await stub.CreateAccounts(
        pb.CreateAccountsRequest(
            accounts=[
                account("bank", code="funding"),
                account("wallet", flags=no_overdraft, metadata={"owner": "alice"}),
                account("shop", code="merchant"),
            ]
        ),
        metadata=md(ALICE),
    )
    assert list(out.results) == [pb.CREATE_ACCOUNT_RESULT_OK] * 3


async def test_accounts_and_transfers_are_created_and_looked_up(svc: Running) -> None:
    stub = svc.stub
    await open_alice(stub)
    out = await stub.CreateTransfers(
        pb.CreateTransfersRequest(
            transfers=[
                transfer("fund", "bank", "wallet", 500, tenant_id="ten_mallory"),
                transfer("buy", "wallet", "shop", 200, code="payment", reference="pay_1"),
                transfer("too_much", "wallet", "shop", 301),
            ]
        ),
        metadata=md(ALICE),
    )
    assert list(out.results) == [
        pb.CREATE_TRANSFER_RESULT_OK,
        pb.CREATE_TRANSFER_RESULT_OK,
        pb.CREATE_TRANSFER_RESULT_EXCEEDS_CREDITS,
    ]
    assert out.transfers[0].tenant_id == "ten_alice"
    found = await stub.LookupAccounts(
        pb.LookupAccountsRequest(ids=["wallet", "nope"]), metadata=md(ALICE)
    )
    [wallet] = found.accounts
    assert (wallet.debits_posted, wallet.credits_posted) == (200, 500)
    assert wallet.flags.debits_must_not_exceed_credits
    assert dict(wallet.metadata) == {"owner": "alice"}
    tr = await stub.LookupTransfers(pb.LookupTransfersRequest(ids=["buy"]), metadata=md(ALICE))
    assert [(t.id, t.amount, t.reference) for t in tr.transfers] == [("buy", 200, "pay_1")]
    entries = await stub.ListEntries(
        pb.ListEntriesRequest(account_id="wallet", limit=1), metadata=md(ALICE)
    )
    assert [(e.transfer.id, e.side) for e in entries.entries] == [("buy", "debit")]
    assert entries.has_more


async def test_a_call_without_a_caller_is_unauthenticated(svc: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await svc.stub.LookupAccounts(pb.LookupAccountsRequest(ids=["bank"]))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_code(err.value) == "unauthenticated"


async def test_another_tenants_account_is_invisible_and_cannot_be_debited(svc: Running) -> None:
    stub = svc.stub
    await open_alice(stub)
    await stub.CreateTransfers(
        pb.CreateTransfersRequest(transfers=[transfer("fund", "bank", "wallet", 500)]),
        metadata=md(ALICE),
    )
    await stub.CreateAccounts(
        pb.CreateAccountsRequest(accounts=[account("loot")]), metadata=md(MALLORY)
    )
    seen = await stub.LookupAccounts(pb.LookupAccountsRequest(ids=["wallet"]), metadata=md(MALLORY))
    assert list(seen.accounts) == []
    steal = await stub.CreateTransfers(
        pb.CreateTransfersRequest(transfers=[transfer("steal", "wallet", "loot", 500)]),
        metadata=md(MALLORY),
    )
    assert list(steal.results) == [pb.CREATE_TRANSFER_RESULT_DEBIT_ACCOUNT_NOT_FOUND]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListEntries(pb.ListEntriesRequest(account_id="wallet"), metadata=md(MALLORY))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    spied = await stub.LookupTransfers(
        pb.LookupTransfersRequest(ids=["fund"]), metadata=md(MALLORY)
    )
    assert list(spied.transfers) == []


async def test_a_malformed_request_is_an_invalid_argument(svc: Running) -> None:
    await open_alice(svc.stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await svc.stub.ListEntries(
            pb.ListEntriesRequest(account_id="wallet", limit=101), metadata=md(ALICE)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(err.value) == "invalid_argument"


async def test_an_expired_hold_is_voided_by_the_running_sweeper_and_announced(
    svc: Running,
) -> None:
    stub = svc.stub
    await open_alice(stub)
    hold = transfer(
        "hold", "bank", "shop", 70, timeout_seconds=5, flags=pb.TransferFlags(pending=True)
    )
    out = await stub.CreateTransfers(
        pb.CreateTransfersRequest(transfers=[hold]), metadata=md(ALICE)
    )
    assert list(out.results) == [pb.CREATE_TRANSFER_RESULT_OK]
    svc.clock.advance(5)
    voided: list[pb.Transfer] = []
    for _ in range(500):  # the sweeper runs every 10 ms; wait for its work, not for a time
        found = await stub.LookupTransfers(
            pb.LookupTransfersRequest(ids=["hold:expired"]), metadata=md(ALICE)
        )
        voided = list(found.transfers)
        if voided and svc.events:
            break
        await asyncio.sleep(0.01)
    assert [(t.pending_id, t.code, t.flags.void_pending) for t in voided] == [
        ("hold", "expiry", True)
    ]
    assert [(e.type, e.subject, e.tenant) for e in svc.events] == [
        ("transfer.expired", "hold", "ten_alice")
    ]
    [shop] = (
        await stub.LookupAccounts(pb.LookupAccountsRequest(ids=["shop"]), metadata=md(ALICE))
    ).accounts
    assert (shop.credits_pending, shop.credits_posted) == (0, 0)


async def test_balances_as_of_an_instant_are_served_to_the_owner_only(svc: Running) -> None:
    stub = svc.stub
    await open_alice(stub)
    before = svc.clock.now_us()
    svc.clock.advance(1)
    fund = pb.CreateTransfersRequest(transfers=[transfer("fund", "bank", "wallet", 500)])
    await stub.CreateTransfers(fund, metadata=md(ALICE))
    funded = svc.clock.now_us()
    svc.clock.advance(1)
    hold = transfer("hold", "wallet", "shop", 120, flags=pb.TransferFlags(pending=True))
    await stub.CreateTransfers(pb.CreateTransfersRequest(transfers=[hold]), metadata=md(ALICE))

    async def wallet_at(as_of_us: int) -> tuple[int, int, int, int]:
        b = await stub.GetAccountBalances(
            pb.GetAccountBalancesRequest(account_id="wallet", as_of_us=as_of_us), metadata=md(ALICE)
        )
        assert (b.account_id, b.currency, b.as_of_us) == ("wallet", "USD", as_of_us)
        return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)

    assert await wallet_at(before) == (0, 0, 0, 0)
    assert await wallet_at(funded) == (0, 0, 0, 500)
    assert await wallet_at(svc.clock.now_us()) == (120, 0, 0, 500)
    assert await wallet_at(0) == (120, 0, 0, 500)  # unset: now
    for caller, account_id in ((MALLORY, "wallet"), (ALICE, "nope")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetAccountBalances(
                pb.GetAccountBalancesRequest(account_id=account_id, as_of_us=funded),
                metadata=md(caller),
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_code(err.value) == "account_not_found"


async def test_accounts_are_listed_in_pages_for_the_callers_tenant_only(svc: Running) -> None:
    stub = svc.stub
    await open_alice(stub)
    await stub.CreateAccounts(
        pb.CreateAccountsRequest(accounts=[account("loot")]), metadata=md(MALLORY)
    )
    first = await stub.ListAccounts(pb.ListAccountsRequest(limit=2), metadata=md(ALICE))
    assert ([a.id for a in first.accounts], first.has_more) == (["bank", "shop"], True)
    rest = await stub.ListAccounts(
        pb.ListAccountsRequest(limit=2, starting_after="shop"), metadata=md(ALICE)
    )
    assert ([a.id for a in rest.accounts], rest.has_more) == (["wallet"], False)
    theirs = await stub.ListAccounts(pb.ListAccountsRequest(), metadata=md(MALLORY))
    assert [a.id for a in theirs.accounts] == ["loot"]
    for request in (
        pb.ListAccountsRequest(limit=101),
        pb.ListAccountsRequest(starting_after="loot"),  # another tenant's id is no cursor
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListAccounts(request, metadata=md(ALICE))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_opened_account_may_never_be_overdrawn_and_reopening_it_answers_it(
    svc: Running,
) -> None:
    opened = await svc.stub.OpenAccount(
        pb.OpenAccountRequest(id="acct_1", currency="USD", code="customer", metadata={"u": "1"}),
        metadata=md(ALICE),
    )
    assert opened.flags.debits_must_not_exceed_credits
    assert (opened.code, dict(opened.metadata), opened.tenant_id) == (
        "customer",
        {"u": "1"},
        "ten_alice",
    )
    assert opened.balance == pb.AccountBalance(available=0, pending=0, posted=0)
    again = await svc.stub.OpenAccount(
        pb.OpenAccountRequest(id="acct_1", currency="USD", code="customer", metadata={"u": "1"}),
        metadata=md(ALICE),
    )
    assert again == opened


@pytest.mark.parametrize(
    ("request_", "status", "code"),
    [
        (
            pb.OpenAccountRequest(id="acct_2", currency="XXX"),
            "INVALID_ARGUMENT",
            "invalid_currency",
        ),
        (pb.OpenAccountRequest(id="", currency="USD"), "INVALID_ARGUMENT", "invalid_id"),
        (
            pb.OpenAccountRequest(id="acct_1", currency="EUR", code="customer"),
            "FAILED_PRECONDITION",
            "exists_with_different_currency",
        ),
    ],
)
async def test_an_account_that_cannot_be_opened_is_refused_with_its_result_code(
    svc: Running, request_: pb.OpenAccountRequest, status: str, code: str
) -> None:
    await svc.stub.OpenAccount(
        pb.OpenAccountRequest(id="acct_1", currency="USD", code="customer"), metadata=md(ALICE)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await svc.stub.OpenAccount(request_, metadata=md(ALICE))
    assert err.value.code().name == status
    assert error_code(err.value) == code
    assert err.value.details() == f"account refused: {code}"


async def test_an_account_reads_its_balance_as_the_ledger_computes_it(svc: Running) -> None:
    await open_alice(svc.stub)
    await svc.stub.CreateTransfers(
        pb.CreateTransfersRequest(
            transfers=[
                transfer("t1", "bank", "wallet", 10_000),
                transfer("t2", "wallet", "shop", 2_500),
                transfer("h1", "wallet", "shop", 1_000, flags=pb.TransferFlags(pending=True)),
                transfer("h2", "bank", "wallet", 300, flags=pb.TransferFlags(pending=True)),
            ]
        ),
        metadata=md(ALICE),
    )
    found = await svc.stub.LookupAccounts(
        pb.LookupAccountsRequest(ids=["wallet"]), metadata=md(ALICE)
    )
    assert found.accounts[0].balance == pb.AccountBalance(
        available=6_500, pending=-700, posted=7_500
    )
