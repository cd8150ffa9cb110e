"""Migrating writes no line at the default level: Alembic's INFO lines (which plugins it
set up, which migrations ran, on every start of every service) are not an operator's."""

from __future__ import annotations

from paymesh.accounts.app import MIGRATIONS
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from tests.loglines import captured


async def test_a_migration_at_info_writes_no_alembic_line(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        with captured() as lines:
            await upgrade(db, MIGRATIONS)
    finally:
        await db.dispose()
    assert [x for x in lines if x["logger"].startswith("alembic")] == []
    assert not [x for x in lines if "setup plugin" in x["event"]]
