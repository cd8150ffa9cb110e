"""Commands naming accounts are checked before anything is recorded (SQLite and PostgreSQL).

An account the tenant lacks (unknown, or another tenant's: the same answer)
is ``account_not_found``; one in another currency is ``currency_mismatch``.
Either way no object, saga step, event or ledger transfer is left behind.
The saga keeps its own late check for an account gone after the command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from paymesh.payments import domain, service
from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain import (
    CaptureMethod,
    CreateP2PTransfer,
    CreatePayment,
    CreatePayout,
    CreateTopup,
    PaymentStatus,
    TopupStatus,
)
from paymesh.payments.errors import AccountNotFound, CurrencyMismatch, TransientError
from paymesh.payments.saga import Deps, leased, run, run_payment
from paymesh.platform.identity import Caller
from tests.fakes.payments_ports import FakeLedger, FakeRisk

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")

Create = Callable[..., Awaitable[Any]]

# Each command with Alice's own valid accounts; a case overrides one field.
_COMMANDS: dict[str, tuple[Callable[..., Any], Create]] = {
    "payment": (
        lambda **f: CreatePayment(
            **{
                "id": "obj_1",
                "payer_account_id": "acct_payer",
                "payee_account_id": "acct_payee",
                "amount": 100,
                "currency": "USD",
                "capture_method": CaptureMethod.AUTOMATIC,
                **f,
            }
        ),
        service.create_payment,
    ),
    "topup": (
        lambda **f: CreateTopup(
            **{"id": "obj_1", "account_id": "acct_payee", "amount": 100, "currency": "USD", **f}
        ),
        service.create_topup,
    ),
    "payout": (
        lambda **f: CreatePayout(
            **{"id": "obj_1", "account_id": "acct_payer", "amount": 100, "currency": "USD", **f}
        ),
        service.create_payout,
    ),
    "transfer": (
        lambda **f: CreateP2PTransfer(
            **{
                "id": "obj_1",
                "from_account_id": "acct_payer",
                "to_account_id": "acct_payee",
                "amount": 100,
                "currency": "USD",
                **f,
            }
        ),
        service.create_transfer,
    ),
}

# Every account a command names, as (command, field).
FIELDS = [
    ("payment", "payer_account_id"),
    ("payment", "payee_account_id"),
    ("topup", "account_id"),
    ("payout", "account_id"),
    ("transfer", "from_account_id"),
    ("transfer", "to_account_id"),
]


@pytest.fixture
def ledger(deps: Deps) -> FakeLedger:
    """Alice's payer (10 000 USD) and payee, Alice's EUR account, and Mallory's USD account."""
    assert isinstance(deps.ledger, FakeLedger)
    deps.ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
    deps.ledger.open("acct_payee", "USD", tenant_id="ten_a")
    deps.ledger.open("acct_euro", "EUR", tenant_id="ten_a", balance=10_000)
    deps.ledger.open("acct_mallory", "USD", tenant_id="ten_m", balance=10_000)
    return deps.ledger


async def _create(deps: Deps, kind: str, **fields: Any) -> Any:
    make, create = _COMMANDS[kind]
    return await create(make(**fields), caller=ALICE, deps=deps)


async def _refused(deps: Deps, kind: str, error: type[Exception], **fields: Any) -> str:
    """The message of the refusal of a command with `fields`."""
    with pytest.raises(error) as refused:
        await _create(deps, kind, **fields)
    return str(refused.value)


async def _assert_nothing_recorded(deps: Deps, ledger: FakeLedger, event_types: Any) -> None:
    for kind in ("payment", "topup", "payout", "transfer"):
        assert await deps.store.get(kind, "obj_1") is None
    assert await event_types() == []
    assert ledger.calls == []
    assert sorted(ledger.accounts) == ["acct_euro", "acct_mallory", "acct_payee", "acct_payer"]
    balances = {a: ledger.balance(a) for a in ("acct_payer", "acct_payee", "acct_mallory")}
    assert balances == {"acct_payer": 10_000, "acct_payee": 0, "acct_mallory": 10_000}
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert isinstance(deps.risk, FakeRisk)
    assert deps.risk.calls == []
    assert isinstance(deps.bank, SimulatedBank)
    assert deps.bank.calls == []


@pytest.mark.parametrize(("kind", "field"), FIELDS)
async def test_another_tenants_account_is_refused_like_an_unknown_one_and_nothing_is_recorded(
    deps: Deps, ledger: FakeLedger, event_types: Any, kind: str, field: str
) -> None:
    foreign = await _refused(deps, kind, AccountNotFound, **{field: "acct_mallory"})
    unknown = await _refused(deps, kind, AccountNotFound, **{field: "acct_nobody"})
    assert foreign == unknown == f"no such account: {field}"
    await _assert_nothing_recorded(deps, ledger, event_types)


@pytest.mark.parametrize(("kind", "field"), FIELDS)
async def test_an_account_in_another_currency_is_refused_naming_both_and_nothing_is_recorded(
    deps: Deps, ledger: FakeLedger, event_types: Any, kind: str, field: str
) -> None:
    message = await _refused(deps, kind, CurrencyMismatch, **{field: "acct_euro"})
    assert message == f"{field}: the account holds EUR, the request is in USD"
    await _assert_nothing_recorded(deps, ledger, event_types)


async def test_a_payment_naming_two_missing_accounts_names_both_fields(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    message = await _refused(
        deps,
        "payment",
        AccountNotFound,
        payer_account_id="acct_mallory",
        payee_account_id="acct_nobody",
    )
    assert message == "no such account: payer_account_id, payee_account_id"
    await _assert_nothing_recorded(deps, ledger, event_types)


async def test_a_command_is_refused_again_the_same_way_when_sent_again(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    first = await _refused(deps, "transfer", AccountNotFound, to_account_id="acct_mallory")
    again = await _refused(deps, "transfer", AccountNotFound, to_account_id="acct_mallory")
    assert first == again
    await _assert_nothing_recorded(deps, ledger, event_types)


@pytest.mark.parametrize("kind", sorted(_COMMANDS))
async def test_each_command_with_its_own_accounts_still_goes_through(
    deps: Deps, ledger: FakeLedger, kind: str
) -> None:
    created = await _create(deps, kind)
    assert created.status.value == "succeeded"


async def test_a_ledger_that_cannot_be_asked_refuses_the_command_and_records_nothing(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    ledger.down = True
    with pytest.raises(TransientError):
        await _create(deps, "payment")
    ledger.down = False
    await _assert_nothing_recorded(deps, ledger, event_types)


async def test_a_payment_whose_payee_is_gone_by_the_time_its_saga_runs_fails_there(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    cmd = _COMMANDS["payment"][0](payee_account_id="acct_gone")
    # Recorded as if the account had passed the check and vanished since.
    payment = domain.new_payment(cmd, "ten_a", deps.clock.now_us())
    assert await deps.store.add("payment", leased(payment, deps)) is None
    p = await run_payment("obj_1", caller=ALICE, deps=deps)
    assert p is not None
    assert (p.status, p.failure_code) == (PaymentStatus.FAILED, "account_not_found")
    assert await event_types("obj_1") == ["payment.failed"]
    assert ledger.balance("acct_payer") == 10_000
    assert ledger.accounts["acct_payer"].debits_pending == 0


async def test_a_topup_whose_account_is_gone_by_the_time_its_saga_runs_never_reaches_the_bank(
    deps: Deps, ledger: FakeLedger
) -> None:
    bank = SimulatedBank()
    flow = dataclasses.replace(deps, bank=bank)
    cmd = _COMMANDS["topup"][0](account_id="acct_gone")
    topup = domain.new_topup(cmd, "ten_a", flow.clock.now_us())
    assert await flow.store.add("topup", leased(topup, flow)) is None
    t = await run("topup", "obj_1", caller=ALICE, deps=flow)
    assert t is not None
    assert (t.status, t.failure_code) == (TopupStatus.FAILED, "account_not_found")
    assert bank.calls == []
