"""Fixtures of the payments integration tests: a migrated store and fake neighbours."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import sqlalchemy as sa

from paymesh.payments.app import MIGRATIONS
from paymesh.payments.saga import Deps, RetryPolicy
from paymesh.payments.store import SqlPaymentsStore, outbox
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger, FakeRisk

# No sleeping between inline retries in tests; the Resumer is driven by hand.
FAST = RetryPolicy(inline_attempts=3, inline_wait_s=0, inline_wait_max_s=0)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlPaymentsStore]:
    """A payments store on a freshly migrated database (SQLite and PostgreSQL)."""
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    try:
        yield SqlPaymentsStore(db)
    finally:
        await db.dispose()


@pytest.fixture
def deps(store: SqlPaymentsStore) -> Deps:
    """The use cases' dependencies: the real store, a fake ledger and risk, a fixed clock."""
    return Deps(store=store, ledger=FakeLedger(), risk=FakeRisk(), clock=FixedClock(), retry=FAST)


EventTypes = Callable[..., Awaitable[list[str]]]


@pytest.fixture
def event_types(store: SqlPaymentsStore) -> EventTypes:
    """Read the types of the outbox's events (about one subject), in order."""

    async def read(subject: str | None = None) -> list[str]:
        query = sa.select(outbox.c.type).order_by(outbox.c.seq)
        if subject is not None:
            query = query.where(outbox.c.key == subject)
        async with store.db.read() as conn:
            return list((await conn.execute(query)).scalars())

    return read
