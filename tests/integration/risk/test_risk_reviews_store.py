"""The review queue on SQLite and PostgreSQL: a review opens with its decision, and two
replicas sweeping overdue reviews (or an operator racing the sweeper) resolve each one
once, with one event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.platform.migrations import upgrade
from paymesh.risk.app import MIGRATIONS
from paymesh.risk.domain import (
    Action,
    AmountLimit,
    DecidePayment,
    Outcome,
    Resolution,
    ReviewStatus,
    Rule,
    RuleSet,
)
from paymesh.risk.errors import ReviewAlreadyResolved
from paymesh.risk.ports import Deps
from paymesh.risk.service import ResolveReview, decide_payment, expire_reviews, resolve_review
from paymesh.risk.store import SqlRiskStore
from paymesh.risk.tables import outbox
from tests.fakes.clock import FixedClock

REVIEW_ALL = RuleSet(
    rules=(
        Rule(
            id="big",
            condition=AmountLimit(limits=(), default_limit=0),
            action=Action.REVIEW,
            reason_code="needs_a_human",
            score=50,
        ),
    )
)
OPS = Caller(tenant_id="ten_1", client_id="cli_ops", scopes=frozenset({"risk:admin"}))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await upgrade(database, MIGRATIONS)
    yield database
    await database.dispose()


async def open_reviews(store: SqlRiskStore, clock: FixedClock, n: int) -> None:
    for i in range(n):
        cmd = DecidePayment(f"pay_{i}", "ten_1", "acct_a", "acct_b", 100, "USD")
        decision = await decide_payment(
            cmd,
            caller=OPS,
            deps=Deps(store, lambda: REVIEW_ALL, clock, review_timeout_s=60),
        )
        assert decision.outcome is Outcome.REVIEW


async def review_events(db: Database) -> list[tuple[str, str]]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(outbox.c.key, outbox.c.type).where(outbox.c.type.like("review.%"))
        )
        return sorted((row.key, row.type) for row in rows)


async def test_two_sweepers_resolve_each_overdue_review_once(db: Database) -> None:
    clock = FixedClock()
    await open_reviews(SqlRiskStore(db), clock, 12)
    clock.advance(60)
    replicas = [SqlRiskStore(db), SqlRiskStore(db)]
    done = await asyncio.gather(
        *(
            expire_reviews(Resolution.DECLINE, batch=5, deps=Deps(r, lambda: REVIEW_ALL, clock))
            for r in replicas
        )
    )
    assert sum(done) == 12
    assert await review_events(db) == sorted((f"pay_{i}", "review.declined") for i in range(12))
    page, more = await replicas[0].list_reviews(
        "ten_1", ReviewStatus.DECLINED, limit=100, starting_after=""
    )
    assert (len(page), more) == (12, False)
    assert {r.resolved_by for r in page} == {"timeout"}


async def test_an_operator_racing_the_sweeper_gets_one_resolution_and_one_event(
    db: Database,
) -> None:
    clock = FixedClock()
    store = SqlRiskStore(db)
    await open_reviews(store, clock, 1)
    clock.advance(60)
    operator = resolve_review(
        ResolveReview("pay_0", Resolution.APPROVE),
        caller=OPS,
        deps=Deps(store, lambda: REVIEW_ALL, clock),
    )
    sweeper = expire_reviews(
        Resolution.DECLINE, deps=Deps(SqlRiskStore(db), lambda: REVIEW_ALL, clock)
    )
    results = await asyncio.gather(operator, sweeper, return_exceptions=True)
    events = await review_events(db)
    assert len(events) == 1
    review = await store.get_review("pay_0")
    assert review is not None
    if events[0][1] == "review.approved":
        assert review.status is ReviewStatus.APPROVED
        assert results[1] == 0
    else:
        assert review.status is ReviewStatus.DECLINED
        assert isinstance(results[0], ReviewAlreadyResolved)


async def test_the_timeout_default_can_be_approve(db: Database) -> None:
    clock = FixedClock()
    store = SqlRiskStore(db)
    await open_reviews(store, clock, 2)
    clock.advance(59)
    assert (
        await expire_reviews(Resolution.APPROVE, deps=Deps(store, lambda: REVIEW_ALL, clock)) == 0
    )
    clock.advance(1)
    assert (
        await expire_reviews(Resolution.APPROVE, deps=Deps(store, lambda: REVIEW_ALL, clock)) == 2
    )
    assert await review_events(db) == [("pay_0", "review.approved"), ("pay_1", "review.approved")]
