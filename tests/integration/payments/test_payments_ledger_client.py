"""The payments service's ledger client against the real accounts service: accounts it
has seen are answered without a call; what it has not seen (or another tenant's) is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from paymesh.accounts import app as accounts_app
from paymesh.payments.adapters import GrpcLedgerClient
from paymesh.payments.errors import TransientError
from paymesh.payments.ports import LedgerAccount
from paymesh.platform.bus import InProcessBus
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import open_channel
from paymesh.settings import Settings

ALICE = Caller(tenant_id="ten_alice", client_id="cli_alice")
BOB = Caller(tenant_id="ten_bob", client_id="cli_bob")
WALLET = LedgerAccount(id="acc_wallet", currency="EUR", code="wallet")


async def test_known_accounts_are_answered_without_a_call_unknown_ones_are_asked(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    admin = f"127.0.0.1:{ports['admin']}"
    settings = Settings(
        var_dir=tmp_path,
        accounts={"listen": f"127.0.0.1:{ports['accounts']}", "admin_listen": admin},
    )
    await accounts_app.migrate(settings)
    accounts = accounts_app.create(settings, bus=InProcessBus())
    await accounts.start()
    channel = open_channel(settings.accounts.target)
    ledger = GrpcLedgerClient(channel, deadline_s=0.5)
    other = GrpcLedgerClient(channel, deadline_s=0.5)  # only looks the account up
    try:
        assert await ledger.lookup_accounts(ALICE, [WALLET.id]) == []  # not opened yet
        assert await ledger.create_accounts(ALICE, [WALLET]) == ["ok"]
        assert await ledger.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
        assert await other.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
    finally:
        await accounts.stop()  # from here on, any call fails
    try:
        assert await ledger.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
        assert await ledger.create_accounts(ALICE, [WALLET]) == ["exists"]
        with pytest.raises(TransientError):  # the same id, another tenant: asked
            await ledger.lookup_accounts(BOB, [WALLET.id])
        with pytest.raises(TransientError):  # one unknown among known ones: asked
            await ledger.lookup_accounts(ALICE, [WALLET.id, "acc_other"])
        with pytest.raises(TransientError):  # the same id with other fields: asked
            await ledger.create_accounts(ALICE, [LedgerAccount(WALLET.id, "EUR", "revenue")])
        assert await other.lookup_accounts(ALICE, [WALLET.id]) == [WALLET]
        with pytest.raises(TransientError):  # a lookup does not say how it was opened
            await other.create_accounts(ALICE, [WALLET])
    finally:
        await channel.close()
