"""Decisions on SQLite and PostgreSQL: stored once, with one outbox event, even under races."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from paymesh.contracts.events import TOPIC_RISK
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.risk.app import MIGRATIONS
from paymesh.risk.domain import DecidePayment, Outcome, amount_limit_rules, decide
from paymesh.risk.events import decision_made
from paymesh.risk.service import decide_payment
from paymesh.risk.store import SqlRiskStore
from paymesh.risk.tables import decisions, metadata, outbox
from tests.fakes.clock import FixedClock
from tests.fakes.risk import risk_caller, risk_deps

RULES = amount_limit_rules({"USD": 1_000}, 1_000)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await upgrade(database, MIGRATIONS)
    yield database
    await database.dispose()


def cmd(amount: int, payment_id: str = "pay_1") -> DecidePayment:
    return DecidePayment(
        payment_id=payment_id,
        tenant_id="ten_1",
        payer_account_id="acct_a",
        payee_account_id="acct_b",
        amount=amount,
        currency="USD",
    )


async def count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_a_decision_is_stored_once_with_its_event_in_the_outbox(db: Database) -> None:
    store = SqlRiskStore(db)
    decision = await decide_payment(
        cmd(1_001), caller=risk_caller(), deps=risk_deps(store, FixedClock(), RULES)
    )
    assert await store.get("pay_1") == decision
    assert decision.outcome is Outcome.DECLINE
    assert decision.reasons[0].code == "amount_over_limit"
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(outbox))).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.topic, row.key, row.type, row.tenant_id) == (
        TOPIC_RISK,
        "pay_1",
        "risk.decision_made",
        "ten_1",
    )
    assert json.loads(row.payload)["data"]["outcome"] == "decline"


async def test_deciding_again_returns_the_first_decision_and_writes_nothing(
    db: Database,
) -> None:
    store, clock = SqlRiskStore(db), FixedClock()
    first = await decide_payment(cmd(10), caller=risk_caller(), deps=risk_deps(store, clock, RULES))
    clock.advance(5)
    again = await decide_payment(
        cmd(10), caller=risk_caller(), deps=risk_deps(store, clock, amount_limit_rules({}, 1))
    )
    assert again == first
    assert again.outcome is Outcome.APPROVE
    assert await count(db, decisions) == 1
    assert await count(db, outbox) == 1


async def test_concurrent_decisions_for_one_payment_leave_one_row_and_one_event(
    db: Database,
) -> None:
    committed: list[None] = []
    store = SqlRiskStore(db, committed=lambda: committed.append(None))
    # Every racer goes straight to the insert, with a decision of its own.
    racers = [decide(RULES, cmd(995 + n), now_us=n) for n in range(10)]
    results = await asyncio.gather(*(store.add(d, decision_made(d)) for d in racers))
    assert len(set(results)) == 1
    assert results[0] in racers
    assert await store.get("pay_1") == results[0]
    assert await count(db, decisions) == 1
    assert await count(db, outbox) == 1
    assert len(committed) == 1


async def test_concurrent_decide_calls_for_one_payment_all_answer_the_stored_decision(
    db: Database,
) -> None:
    store = SqlRiskStore(db)
    results = await asyncio.gather(
        *(
            decide_payment(
                cmd(995 + n), caller=risk_caller(), deps=risk_deps(store, FixedClock(), RULES)
            )
            for n in range(10)
        )
    )
    assert set(results) == {await store.get("pay_1")}
    assert await count(db, decisions) == 1
    assert await count(db, outbox) == 1


async def test_the_migrations_create_exactly_the_tables_the_store_declares(db: Database) -> None:
    def diff(sync_conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(sync_conn), metadata))

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []
