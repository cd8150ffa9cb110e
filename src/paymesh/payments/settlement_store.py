"""Settlement and reconciliation in the payments database (SQLAlchemy Core).

A run is made in one write transaction (:meth:`SettlementStore.make_run`):
it first takes the tenant's settings row (a row lock on PostgreSQL; SQLite's
writes are serial), so runs of one tenant follow one another; reads the last
run; claims the unclaimed captures and refunds final at or before the cutoff
(``settlement_items``' key makes each claim once); and writes the run and
its lines. A statement, its entries and its breaks are written in one
transaction too; its (tenant, bank statement id) is unique, so a statement
imported twice, even at once, is refused.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from paymesh.payments.domain.settlement import (
    CARRIED,
    ItemType,
    LineStatus,
    RunStatus,
    SettlementItem,
    SettlementRun,
    SettlementSettings,
)
from paymesh.payments.flows.payment import payments
from paymesh.payments.flows.payout import payouts
from paymesh.payments.flows.payout_return import payout_returns
from paymesh.payments.flows.refund import refunds
from paymesh.payments.tables import (
    StatementRow,
    bank_statements,
    item_from_row,
    item_row,
    line_from_row,
    line_row,
    payout_batches,
    recon_breaks,
    settings_from_row,
    settlement_items,
    settlement_lines,
    settlement_runs,
    settlement_settings,
    statement_entries,
    statement_from_row,
)
from paymesh.platform.db import Database

__all__ = ["BreakRow", "DuplicateStatementRow", "RunRaced", "SettlementStore", "StatementRaced"]


BreakRow = dict[str, Any]

# What makes a run: given the claimed items, the carried amounts and the last run's cutoff,
# the run (awaited inside the transaction: it may ask the ledger for bank details).
MakeRun = Callable[
    [list[SettlementItem], dict[str, int], int | None, dict[str, set[str]]],
    Awaitable[SettlementRun],
]


def _newest_first(
    table: sa.Table, tenant_id: str, after: SettlementRun | StatementRow | None, limit: int
) -> sa.Select[Any]:
    """A page of the tenant's rows of `table`, newest first, after `after` (keyset on
    (created_at_us, id): the id breaks ties), one row more than `limit` (is there more?)."""
    t = table.c
    q = sa.select(table).where(t.tenant_id == tenant_id)
    if after is not None:
        q = q.where(sa.tuple_(t.created_at_us, t.id) < (after.created_at_us, after.id))
    return q.order_by(t.created_at_us.desc(), t.id.desc()).limit(limit + 1)


class RunRaced(Exception):
    """Another run claimed one of this run's items first: make it again."""


class StatementRaced(Exception):
    """Another import booked what this statement books since it was matched: match again."""


class DuplicateStatementRow(Exception):
    """The tenant already imported a statement with this bank statement id."""


class SettlementStore:
    """Runs, batches, statements and breaks in the payments database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- settings ------------------------------------------------------------------

    async def get_settings(self, tenant_id: str) -> SettlementSettings:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(settlement_settings).where(
                        settlement_settings.c.tenant_id == tenant_id
                    )
                )
            ).first()
        return settings_from_row(r) if r is not None else SettlementSettings(tenant_id)

    async def set_settings(self, s: SettlementSettings) -> None:
        values = {
            "requires_approval": s.requires_approval,
            "schedule_time": s.schedule_time,
            "time_zone": s.time_zone,
            "schedule_currencies": ",".join(s.schedule_currencies),
            "debtor_iban": s.debtor.iban if s.debtor else "",
            "debtor_bic": s.debtor.bic if s.debtor else "",
            "debtor_name": s.debtor.name if s.debtor else "",
            "updated_at_us": s.updated_at_us,
        }
        async with self.db.transaction() as conn:
            await self._ensure_settings(conn, s.tenant_id, s.updated_at_us)
            await conn.execute(
                settlement_settings.update()
                .where(settlement_settings.c.tenant_id == s.tenant_id)
                .values(**values)
            )

    async def scheduled_settings(self) -> list[SettlementSettings]:
        """Every tenant's settings that have a schedule."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(settlement_settings).where(settlement_settings.c.schedule_time != "")
            )
            return [settings_from_row(r) for r in rows]

    @staticmethod
    async def _ensure_settings(conn: AsyncConnection, tenant_id: str, now_us: int) -> None:
        found = await conn.scalar(
            sa.select(settlement_settings.c.tenant_id).where(
                settlement_settings.c.tenant_id == tenant_id
            )
        )
        if found is None:
            await conn.execute(
                settlement_settings.insert().values(tenant_id=tenant_id, updated_at_us=now_us)
            )

    # -- runs ------------------------------------------------------------------------

    async def make_run(
        self, tenant_id: str, currency: str, cutoff_us: int, now_us: int, make: MakeRun
    ) -> tuple[SettlementRun, bool]:
        """The tenant's run of `currency` at `cutoff_us`: the stored one, or a new one made
        by `make` from the items it claims (and whether it is new)."""
        for _ in range(5):
            try:
                return await self._make_run(tenant_id, currency, cutoff_us, now_us, make)
            except (RunRaced, IntegrityError):
                continue
        raise RunRaced("settlement runs of this tenant keep racing")

    async def _make_run(
        self, tenant_id: str, currency: str, cutoff_us: int, now_us: int, make: MakeRun
    ) -> tuple[SettlementRun, bool]:
        async with self.db.transaction() as conn:
            await self._ensure_settings(conn, tenant_id, now_us)
            # Take the tenant's settings row: runs of one tenant follow one another.
            await conn.execute(
                settlement_settings.update()
                .where(settlement_settings.c.tenant_id == tenant_id)
                .values(updated_at_us=settlement_settings.c.updated_at_us)
            )
            same = (
                await conn.execute(
                    sa.select(settlement_runs).where(
                        settlement_runs.c.tenant_id == tenant_id,
                        settlement_runs.c.currency == currency,
                        settlement_runs.c.cutoff_us == cutoff_us,
                    )
                )
            ).first()
            if same is not None:
                return await self._load_run(conn, same), False
            last = (
                await conn.execute(
                    sa.select(settlement_runs.c.id, settlement_runs.c.cutoff_us)
                    .where(
                        settlement_runs.c.tenant_id == tenant_id,
                        settlement_runs.c.currency == currency,
                    )
                    .order_by(settlement_runs.c.cutoff_us.desc())
                    .limit(1)
                )
            ).first()
            carried: dict[str, int] = {}
            if last is not None:
                rows = await conn.execute(
                    sa.select(settlement_lines.c.account_id, settlement_lines.c.net).where(
                        settlement_lines.c.run_id == last.id,
                        settlement_lines.c.status.in_([x.value for x in CARRIED]),
                        settlement_lines.c.net != 0,
                    )
                )
                carried = {r.account_id: r.net for r in rows}
            for account_id, net in (await self._paid_back(conn, tenant_id, currency)).items():
                carried[account_id] = carried.get(account_id, 0) + net
            items = await self._unclaimed(conn, tenant_id, currency, cutoff_us)
            returned = await self._returned_ibans(conn, tenant_id)
            run = await make(items, carried, None if last is None else last.cutoff_us, returned)
            settled = {(i.object_id, i.type) for i in run.items}
            await conn.execute(
                settlement_runs.insert().values(
                    id=run.id,
                    tenant_id=tenant_id,
                    currency=currency,
                    cutoff_us=cutoff_us,
                    created_at_us=run.created_at_us,
                    status=run.status.value,
                    payout_batch_id=run.payout_batch_id,
                    item_count=len(settled),
                )
            )
            if items:
                # Every item is claimed once; one a run does not settle (its payee is not a
                # merchant account) is claimed by no run ("").
                await conn.execute(
                    settlement_items.insert(),
                    [
                        item_row(run.id if (i.object_id, i.type) in settled else "", tenant_id, i)
                        for i in items
                    ],
                )
            if run.lines:
                await conn.execute(
                    settlement_lines.insert(), [line_row(run.id, line) for line in run.lines]
                )
            return run, True

    @staticmethod
    async def _returned_ibans(conn: AsyncConnection, tenant_id: str) -> dict[str, set[str]]:
        """The IBANs the bank returned each merchant account's payouts from."""
        found = await conn.execute(
            sa.select(settlement_lines.c.account_id, settlement_lines.c.bank_iban)
            .join(settlement_runs, settlement_runs.c.id == settlement_lines.c.run_id)
            .where(
                settlement_runs.c.tenant_id == tenant_id,
                settlement_lines.c.status == LineStatus.PAYOUT_RETURNED.value,
            )
        )
        returned: dict[str, set[str]] = {}
        for r in found:
            returned.setdefault(r.account_id, set()).add(r.bank_iban)
        return returned

    @staticmethod
    async def _paid_back(conn: AsyncConnection, tenant_id: str, currency: str) -> dict[str, int]:
        """The nets of the tenant's paid lines whose payout failed or the bank returned,
        by account, marked as carried (so each is carried into one run only)."""
        lines, runs = settlement_lines, settlement_runs
        found = await conn.execute(
            sa.select(
                lines.c.run_id,
                lines.c.account_id,
                lines.c.net,
                payouts.c.status,
                payout_returns.c.status.label("returned"),
            )
            .join(runs, runs.c.id == lines.c.run_id)
            .join(payouts, payouts.c.id == lines.c.payout_id)
            .outerjoin(payout_returns, payout_returns.c.id == lines.c.payout_id)
            .where(
                runs.c.tenant_id == tenant_id,
                runs.c.currency == currency,
                lines.c.status == LineStatus.PAYOUT.value,
                sa.or_(payouts.c.status == "failed", payout_returns.c.status == "succeeded"),
            )
        )
        refused = await conn.execute(
            sa.select(lines.c.run_id, lines.c.account_id, lines.c.net)
            .join(runs, runs.c.id == lines.c.run_id)
            .where(
                runs.c.tenant_id == tenant_id,
                runs.c.currency == currency,
                lines.c.status == LineStatus.PAYOUT_REFUSED.value,
            )
        )
        # Each (line, its status now, the status that says it was carried), moved once.
        moves = [(x, LineStatus.PAYOUT_REFUSED, LineStatus.PAYOUT_FAILED) for x in refused] + [
            (
                r,
                LineStatus.PAYOUT,
                LineStatus.PAYOUT_FAILED if r.status == "failed" else LineStatus.PAYOUT_RETURNED,
            )
            for r in found
        ]
        carried: dict[str, int] = {}
        for line, was, now in moves:
            done = await conn.execute(
                lines.update()
                .where(
                    lines.c.run_id == line.run_id,
                    lines.c.account_id == line.account_id,
                    lines.c.status == was.value,
                )
                .values(status=now.value)
            )
            if done.rowcount == 1:
                carried[line.account_id] = carried.get(line.account_id, 0) + line.net
        return carried

    @staticmethod
    async def _unclaimed(
        conn: AsyncConnection, tenant_id: str, currency: str, cutoff_us: int
    ) -> list[SettlementItem]:
        """The tenant's captures and refunds of `currency` final by `cutoff_us` that no run
        has claimed."""

        def claimed(kind: ItemType) -> sa.Select[Any]:
            return sa.select(settlement_items.c.object_id).where(
                settlement_items.c.tenant_id == tenant_id, settlement_items.c.type == kind.value
            )

        captured = await conn.execute(
            sa.select(
                payments.c.id,
                payments.c.payee_account_id,
                payments.c.amount_captured,
                payments.c.fee,
                payments.c.updated_at_us,
            )
            .where(
                payments.c.tenant_id == tenant_id,
                payments.c.currency == currency,
                payments.c.status == "succeeded",
                payments.c.amount_captured > 0,
                payments.c.updated_at_us <= cutoff_us,
                payments.c.id.not_in(claimed(ItemType.CAPTURE)),
            )
            .order_by(payments.c.updated_at_us, payments.c.id)
        )
        items = [
            SettlementItem(
                object_id=r.id,
                type=ItemType.CAPTURE,
                account_id=r.payee_account_id,
                payment_id=r.id,
                currency=currency,
                gross=r.amount_captured,
                fee=r.fee,
                at_us=r.updated_at_us,
                transfer_ids=(f"{r.id}:hold", f"{r.id}:capture")
                + ((f"{r.id}:fee",) if r.fee else ()),
            )
            for r in captured
        ]
        refunded = await conn.execute(
            sa.select(
                refunds.c.id,
                refunds.c.payment_id,
                refunds.c.payee_account_id,
                refunds.c.amount,
                refunds.c.updated_at_us,
            )
            .where(
                refunds.c.tenant_id == tenant_id,
                refunds.c.currency == currency,
                refunds.c.status == "succeeded",
                refunds.c.updated_at_us <= cutoff_us,
                refunds.c.id.not_in(claimed(ItemType.REFUND)),
            )
            .order_by(refunds.c.updated_at_us, refunds.c.id)
        )
        items += [
            SettlementItem(
                object_id=r.id,
                type=ItemType.REFUND,
                account_id=r.payee_account_id,
                payment_id=r.payment_id,
                currency=currency,
                gross=r.amount,
                fee=0,
                at_us=r.updated_at_us,
                transfer_ids=(r.id,),
            )
            for r in refunded
        ]
        return items

    async def _load_run(self, conn: AsyncConnection, r: Any) -> SettlementRun:
        lines = await conn.execute(
            sa.select(settlement_lines)
            .where(settlement_lines.c.run_id == r.id)
            .order_by(settlement_lines.c.account_id)
        )
        return SettlementRun(
            id=r.id,
            tenant_id=r.tenant_id,
            currency=r.currency,
            cutoff_us=r.cutoff_us,
            created_at_us=r.created_at_us,
            status=RunStatus(r.status),
            lines=tuple(line_from_row(x) for x in lines),
            payout_batch_id=r.payout_batch_id,
            approved_by=r.approved_by,
            approved_at_us=r.approved_at_us,
        )

    async def get_run(self, tenant_id: str, run_id: str) -> SettlementRun | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(settlement_runs).where(
                        settlement_runs.c.id == run_id, settlement_runs.c.tenant_id == tenant_id
                    )
                )
            ).first()
            return None if r is None else await self._load_run(conn, r)

    async def item_count(self, run_id: str) -> int:
        async with self.db.read() as conn:
            found = await conn.scalar(
                sa.select(settlement_runs.c.item_count).where(settlement_runs.c.id == run_id)
            )
        return int(found or 0)

    async def list_runs(
        self, tenant_id: str, *, limit: int, starting_after: SettlementRun | None
    ) -> tuple[list[SettlementRun], bool]:
        q = _newest_first(settlement_runs, tenant_id, starting_after, limit)
        async with self.db.read() as conn:
            rows = list(await conn.execute(q))
            runs = [await self._load_run(conn, r) for r in rows[:limit]]
        return runs, len(rows) > limit

    async def items(self, run_id: str, account_id: str = "") -> list[SettlementItem]:
        q = sa.select(settlement_items).where(settlement_items.c.run_id == run_id)
        if account_id:
            q = q.where(settlement_items.c.account_id == account_id)
        q = q.order_by(settlement_items.c.account_id, settlement_items.c.at_us)
        async with self.db.read() as conn:
            return [item_from_row(r) for r in await conn.execute(q)]

    async def approve(
        self, run: SettlementRun, batch: dict[str, Any] | None, by: str, now_us: int
    ) -> bool:
        """Mark a pending run paid out (its waiting lines now payouts), once; False when
        another approval won."""
        status = RunStatus.PAID_OUT if batch else RunStatus.NOTHING_TO_PAY
        async with self.db.transaction() as conn:
            done = await conn.execute(
                settlement_runs.update()
                .where(
                    settlement_runs.c.id == run.id,
                    settlement_runs.c.status == RunStatus.PENDING_APPROVAL.value,
                )
                .values(
                    status=status.value,
                    payout_batch_id=batch["id"] if batch else None,
                    approved_by=by,
                    approved_at_us=now_us,
                )
            )
            if done.rowcount != 1:
                return False
            await conn.execute(
                settlement_lines.update()
                .where(
                    settlement_lines.c.run_id == run.id,
                    settlement_lines.c.status == LineStatus.AWAITING_APPROVAL.value,
                )
                .values(status=LineStatus.PAYOUT.value)
            )
            if batch:
                await conn.execute(payout_batches.insert().values(**batch))
            return True

    async def refuse_line(self, run_id: str, account_id: str) -> None:
        """Mark a paid line whose payout the payments service refused (carried next run)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                settlement_lines.update()
                .where(
                    settlement_lines.c.run_id == run_id,
                    settlement_lines.c.account_id == account_id,
                    settlement_lines.c.status == LineStatus.PAYOUT.value,
                )
                .values(status=LineStatus.PAYOUT_REFUSED.value)
            )

    async def add_batch(self, batch: dict[str, Any]) -> None:
        """Record a run's payout batch, once."""
        try:
            async with self.db.transaction() as conn:
                found = await conn.scalar(
                    sa.select(payout_batches.c.id).where(payout_batches.c.id == batch["id"])
                )
                if found is None:
                    await conn.execute(payout_batches.insert().values(**batch))
        except IntegrityError:
            pass

    async def get_batch(self, tenant_id: str, batch_id: str) -> dict[str, Any] | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(payout_batches).where(
                        payout_batches.c.id == batch_id, payout_batches.c.tenant_id == tenant_id
                    )
                )
            ).first()
        return None if r is None else dict(r._mapping)

    async def payout_statuses(self, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(payouts.c.id, payouts.c.status).where(payouts.c.id.in_(list(ids)))
            )
            return {r.id: r.status for r in rows}

    # -- reconciliation ----------------------------------------------------------------

    async def candidates(
        self, tenant_id: str, kind: str, object_ids: Iterable[str]
    ) -> dict[str, dict[str, Any]]:
        """The tenant's payouts, top-ups or top-up reversals (`kind`) among `object_ids`, by
        id, each with whether a statement already booked it (``already_matched``), the bank
        already returned it (``already_returned``) and an operator wrote its absence off
        (``written_off``). A few queries per chunk of ids, whatever the statement's size."""
        from paymesh.payments.flows import flow

        wanted = sorted({i for i in object_ids if i})
        table = flow(kind).table
        found: dict[str, dict[str, Any]] = {}
        async with self.db.read() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                rows = await conn.execute(
                    sa.select(
                        table.c.id,
                        table.c.amount,
                        table.c.currency,
                        table.c.status,
                        table.c.created_at_us,
                    ).where(table.c.id.in_(chunk), table.c.tenant_id == tenant_id)
                )
                for r in rows:
                    found[r.id] = dict(r._mapping) | {
                        "already_matched": False,
                        "already_returned": False,
                        "written_off": False,
                    }
                booked = await conn.execute(
                    sa.select(statement_entries.c.object_id, statement_entries.c.result).where(
                        statement_entries.c.tenant_id == tenant_id,
                        statement_entries.c.object_kind == kind,
                        statement_entries.c.object_id.in_(chunk),
                        statement_entries.c.result.in_(["matched", "amount_mismatch", "returned"]),
                    )
                )
                for b in booked:
                    flag = "already_returned" if b.result == "returned" else "already_matched"
                    if b.object_id in found:
                        found[b.object_id][flag] = True
                written = await conn.execute(
                    sa.select(recon_breaks.c.object_id).where(
                        recon_breaks.c.tenant_id == tenant_id,
                        recon_breaks.c.type == "unmatched_ledger",
                        recon_breaks.c.resolution == "write_off",
                        recon_breaks.c.object_id.in_(chunk),
                    )
                )
                for w in written:
                    if w.object_id in found:
                        found[w.object_id]["written_off"] = True
        return found

    async def candidate(self, tenant_id: str, kind: str, object_id: str) -> dict[str, Any] | None:
        """One of :meth:`candidates` (None: not the tenant's, or none)."""
        return (await self.candidates(tenant_id, kind, [object_id])).get(object_id)

    async def unbooked_payouts(
        self, tenant_id: str, currency: str, from_us: int, to_us: int
    ) -> list[dict[str, Any]]:
        """The tenant's succeeded settlement payouts of `currency` made in [from_us, to_us)
        that no statement line booked and no break already reports."""
        booked = sa.select(statement_entries.c.object_id).where(
            statement_entries.c.tenant_id == tenant_id,
            statement_entries.c.object_kind == "payout",
            statement_entries.c.result.in_(["matched", "amount_mismatch", "returned"]),
        )
        reported = sa.select(recon_breaks.c.object_id).where(
            recon_breaks.c.tenant_id == tenant_id,
            recon_breaks.c.type == "unmatched_ledger",
        )
        settled = (
            sa.select(settlement_lines.c.payout_id)
            .join(settlement_runs, settlement_runs.c.id == settlement_lines.c.run_id)
            .where(
                settlement_runs.c.tenant_id == tenant_id,
                settlement_lines.c.status == LineStatus.PAYOUT.value,
            )
        )
        q = (
            sa.select(payouts.c.id, payouts.c.amount, payouts.c.currency, payouts.c.created_at_us)
            .where(
                payouts.c.tenant_id == tenant_id,
                payouts.c.currency == currency,
                payouts.c.status == "succeeded",
                payouts.c.created_at_us >= from_us,
                payouts.c.created_at_us < to_us,
                payouts.c.id.in_(settled),
                payouts.c.id.not_in(booked),
                payouts.c.id.not_in(reported),
            )
            .order_by(payouts.c.created_at_us, payouts.c.id)
        )
        async with self.db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]

    async def add_statement(
        self,
        statement: StatementRow,
        entries: Iterable[dict[str, Any]],
        breaks: Iterable[BreakRow],
    ) -> None:
        """Record a statement, its entries and its breaks at once (DuplicateStatementRow
        when the tenant has it already)."""
        s = statement
        rows = list(entries)
        found = list(breaks)
        try:
            async with self.db.transaction() as conn:
                # Imports of one tenant follow one another (its settings row, as runs do), and
                # what this one read before is checked again: another import may have booked
                # the same payouts since (then this one is matched again, from the start).
                await self._ensure_settings(conn, s.tenant_id, s.created_at_us)
                await conn.execute(
                    settlement_settings.update()
                    .where(settlement_settings.c.tenant_id == s.tenant_id)
                    .values(updated_at_us=settlement_settings.c.updated_at_us)
                )
                if await self._raced(conn, s.tenant_id, rows, found):
                    raise StatementRaced(s.statement_id)
                await conn.execute(
                    bank_statements.insert().values(
                        id=s.id,
                        tenant_id=s.tenant_id,
                        statement_id=s.statement_id,
                        account_iban=s.account_iban,
                        currency=s.currency,
                        from_date=s.from_date,
                        to_date=s.to_date,
                        entry_count=s.entry_count,
                        counts=json.dumps(s.counts, sort_keys=True),
                        sums=json.dumps(s.sums, sort_keys=True),
                        created_at_us=s.created_at_us,
                    )
                )
                if rows:
                    await conn.execute(statement_entries.insert(), rows)
                if found:
                    await conn.execute(recon_breaks.insert(), found)
                booked = [
                    e["object_id"]
                    for e in rows
                    if e["object_kind"] == "payout"
                    and e["result"] in ("matched", "amount_mismatch")
                ]
                for start in range(0, len(booked), 500):
                    # The bank booked them late: their open unmatched_ledger breaks are done.
                    await conn.execute(
                        recon_breaks.update()
                        .where(
                            recon_breaks.c.tenant_id == s.tenant_id,
                            recon_breaks.c.type == "unmatched_ledger",
                            recon_breaks.c.status == "open",
                            recon_breaks.c.object_id.in_(booked[start : start + 500]),
                        )
                        .values(
                            status="resolved",
                            resolution="matched",
                            note=f"booked by statement {s.statement_id}"[:1000],
                            resolved_by="reconciliation",
                            resolved_at_us=s.created_at_us,
                        )
                    )
        except IntegrityError as exc:
            raise DuplicateStatementRow(s.statement_id) from exc

    @staticmethod
    async def _raced(
        conn: AsyncConnection, tenant_id: str, rows: list[dict[str, Any]], breaks: list[BreakRow]
    ) -> bool:
        """Whether a statement recorded since this one was matched booked or returned what
        this one books or returns, or an operator wrote off the absence of what it books."""
        booking = {e["object_id"] for e in rows if e["result"] in ("matched", "amount_mismatch")}
        returning = {e["object_id"] for e in rows if e["result"] == "returned"}
        missing = {b["object_id"] for b in breaks if b["type"] == "unmatched_ledger"}
        ids = sorted((booking | returning | missing) - {""})
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            others = await conn.execute(
                sa.select(statement_entries.c.object_id, statement_entries.c.result).where(
                    statement_entries.c.tenant_id == tenant_id,
                    statement_entries.c.object_id.in_(chunk),
                    statement_entries.c.result.in_(["matched", "amount_mismatch", "returned"]),
                )
            )
            for o in others:
                returned = o.result == "returned"
                if (returned and o.object_id in returning) or (
                    not returned and o.object_id in (booking | missing)
                ):
                    return True
            written = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(recon_breaks)
                .where(
                    recon_breaks.c.tenant_id == tenant_id,
                    recon_breaks.c.type == "unmatched_ledger",
                    recon_breaks.c.resolution == "write_off",
                    recon_breaks.c.object_id.in_([i for i in chunk if i in booking]),
                )
            )
            if written:
                return True
        return False

    async def debtor_ibans(self, tenant_id: str) -> set[str]:
        """Every account the tenant's payout batches were paid from."""
        async with self.db.read() as conn:
            found = await conn.execute(
                sa.select(payout_batches.c.debtor_iban)
                .where(payout_batches.c.tenant_id == tenant_id)
                .distinct()
            )
            return {r.debtor_iban for r in found}

    async def has_statement(self, tenant_id: str, statement_id: str) -> bool:
        async with self.db.read() as conn:
            found = await conn.scalar(
                sa.select(bank_statements.c.id).where(
                    bank_statements.c.tenant_id == tenant_id,
                    bank_statements.c.statement_id == statement_id,
                )
            )
        return found is not None

    async def get_statement(self, tenant_id: str, statement_id: str) -> StatementRow | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(bank_statements).where(
                        bank_statements.c.id == statement_id,
                        bank_statements.c.tenant_id == tenant_id,
                    )
                )
            ).first()
        return None if r is None else statement_from_row(r)

    async def list_statements(
        self, tenant_id: str, *, limit: int, starting_after: StatementRow | None
    ) -> tuple[list[StatementRow], bool]:
        q = _newest_first(bank_statements, tenant_id, starting_after, limit)
        async with self.db.read() as conn:
            rows = list(await conn.execute(q))
        return [statement_from_row(r) for r in rows[:limit]], len(rows) > limit

    async def get_break(self, tenant_id: str, break_id: str) -> BreakRow | None:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    sa.select(recon_breaks).where(
                        recon_breaks.c.id == break_id, recon_breaks.c.tenant_id == tenant_id
                    )
                )
            ).first()
        return None if r is None else dict(r._mapping)

    async def list_breaks(
        self,
        tenant_id: str,
        *,
        statement_id: str,
        status: str,
        limit: int,
        starting_after: BreakRow | None,
    ) -> tuple[list[BreakRow], bool]:
        t = recon_breaks
        q = sa.select(t).where(t.c.tenant_id == tenant_id)
        if statement_id:
            q = q.where(t.c.statement_id == statement_id)
        if status:
            q = q.where(t.c.status == status)
        if starting_after is not None:
            q = q.where(
                sa.tuple_(t.c.created_at_us, t.c.id)
                > (starting_after["created_at_us"], starting_after["id"])
            )
        q = q.order_by(t.c.created_at_us, t.c.id).limit(limit + 1)
        async with self.db.read() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(q)]
        return rows[:limit], len(rows) > limit

    async def resolve_break(self, tenant_id: str, break_id: str, values: dict[str, Any]) -> bool:
        """Resolve an open break (False when it is not open any more)."""
        async with self.db.transaction() as conn:
            done = await conn.execute(
                recon_breaks.update()
                .where(
                    recon_breaks.c.id == break_id,
                    recon_breaks.c.tenant_id == tenant_id,
                    recon_breaks.c.status == "open",
                )
                .values(status="resolved", **values)
            )
            return bool(done.rowcount == 1)
