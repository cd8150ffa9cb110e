"""The settlement and reconciliation RPCs of paymesh.payments.v1.Payments, over
:mod:`paymesh.payments.settlement` (bound into the servicer by
:func:`paymesh.payments.api.servicer`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments import settlement
from paymesh.payments.domain.settlement import BankDetails, SettlementItem, SettlementSettings
from paymesh.payments.saga import Deps
from paymesh.payments.settlement_store import BreakRow
from paymesh.payments.tables import StatementRow
from paymesh.platform.identity import Caller
from paymesh.platform.rpc import require_caller

__all__ = ["METHODS", "break_pb", "run_pb", "settings_pb", "statement_pb"]

Context = grpc.aio.ServicerContext[Any, Any]
Method = Callable[..., Awaitable[Any]]
Handler = Callable[[Any, Caller, Deps], Awaitable[Any]]


def run_pb(view: settlement.RunView) -> pb.SettlementRun:
    """The protobuf form of a run (with its payouts' statuses)."""
    r = view.run
    return pb.SettlementRun(
        id=r.id,
        tenant_id=r.tenant_id,
        currency=r.currency,
        cutoff_us=r.cutoff_us,
        created_at_us=r.created_at_us,
        status=r.status.value,
        lines=[
            pb.SettlementLine(
                account_id=line.account_id,
                gross=line.gross,
                refunds=line.refunds,
                fees=line.fees,
                carried_in=line.carried_in,
                net=line.net,
                status=line.status.value,
                payout_id=line.payout_id or "",
                payout_status=view.payout_statuses.get(line.payout_id or "", ""),
            )
            for line in r.lines
        ],
        payout_batch_id=r.payout_batch_id or "",
        approved_by=r.approved_by,
        approved_at_us=r.approved_at_us,
        item_count=view.item_count,
    )


def item_pb(i: SettlementItem, payout_id: str) -> pb.SettlementItem:
    """The protobuf form of a run's item."""
    return pb.SettlementItem(
        object_id=i.object_id,
        type=i.type.value,
        account_id=i.account_id,
        payment_id=i.payment_id,
        currency=i.currency,
        gross=i.gross,
        fee=i.fee,
        net=i.net,
        at_us=i.at_us,
        transfer_ids=list(i.transfer_ids),
        payout_id=payout_id,
    )


def _bank_pb(b: BankDetails | None) -> pb.BankAccountDetails | None:
    return None if b is None else pb.BankAccountDetails(iban=b.iban, bic=b.bic, name=b.name)


def settings_pb(s: SettlementSettings) -> pb.SettlementSettings:
    """The protobuf form of a tenant's settlement settings."""
    return pb.SettlementSettings(
        tenant_id=s.tenant_id,
        requires_approval=s.requires_approval,
        schedule_time=s.schedule_time,
        time_zone=s.time_zone,
        schedule_currencies=list(s.schedule_currencies),
        debtor=_bank_pb(s.debtor),
        updated_at_us=s.updated_at_us,
    )


def statement_pb(s: StatementRow) -> pb.BankStatement:
    """The protobuf form of an imported statement and its report."""
    return pb.BankStatement(
        id=s.id,
        tenant_id=s.tenant_id,
        statement_id=s.statement_id,
        account_iban=s.account_iban,
        currency=s.currency,
        from_date=s.from_date,
        to_date=s.to_date,
        entry_count=s.entry_count,
        counts=s.counts,
        sums=s.sums,
        created_at_us=s.created_at_us,
    )


def break_pb(b: BreakRow) -> pb.ReconciliationBreak:
    """The protobuf form of a reconciliation break."""
    fields = pb.ReconciliationBreak.DESCRIPTOR.fields_by_name
    return pb.ReconciliationBreak(**{k: v for k, v in b.items() if k in fields})


async def _create_run(r: pb.CreateSettlementRunRequest, caller: Caller, deps: Deps) -> Any:
    return run_pb(await settlement.create_run(r.currency, r.cutoff_us, caller=caller, deps=deps))


async def _get_run(r: pb.GetSettlementRunRequest, caller: Caller, deps: Deps) -> Any:
    return run_pb(await settlement.get_run(r.id, caller=caller, deps=deps))


async def _list_runs(r: pb.ListSettlementRunsRequest, caller: Caller, deps: Deps) -> Any:
    runs, more = await settlement.list_runs(
        caller=caller, deps=deps, limit=r.limit, starting_after=r.starting_after
    )
    return pb.ListSettlementRunsResponse(settlement_runs=[run_pb(v) for v in runs], has_more=more)


async def _approve(r: pb.ApproveSettlementRunRequest, caller: Caller, deps: Deps) -> Any:
    return run_pb(await settlement.approve_run(r.id, r.approved_by, caller=caller, deps=deps))


async def _report(r: pb.GetSettlementReportRequest, caller: Caller, deps: Deps) -> Any:
    view, items = await settlement.report(r.run_id, r.account_id, caller=caller, deps=deps)
    payouts = {line.account_id: line.payout_id or "" for line in view.run.lines}
    return pb.SettlementReport(
        run=run_pb(view), items=[item_pb(i, payouts.get(i.account_id, "")) for i in items]
    )


async def _batch(r: pb.GetPayoutBatchRequest, caller: Caller, deps: Deps) -> Any:
    batch, view = await settlement.get_batch(r.id, caller=caller, deps=deps)
    return pb.PayoutBatch(
        id=batch["id"],
        tenant_id=batch["tenant_id"],
        run_id=batch["run_id"],
        currency=batch["currency"],
        payout_ids=[line.payout_id or "" for line in settlement.batch_lines(view)],
        total=sum(line.net for line in settlement.batch_lines(view)),
        created_at_us=batch["created_at_us"],
    )


async def _batch_file(r: pb.GetPayoutBatchRequest, caller: Caller, deps: Deps) -> Any:
    content = await settlement.batch_file(r.id, caller=caller, deps=deps)
    return pb.BankFile(
        content=content, media_type="application/xml", filename=f"{r.id}.pain.001.xml"
    )


async def _get_settings(_r: pb.GetSettlementSettingsRequest, caller: Caller, deps: Deps) -> Any:
    return settings_pb(await settlement.get_settings(caller=caller, deps=deps))


async def _set_settings(r: pb.SettlementSettings, caller: Caller, deps: Deps) -> Any:
    debtor = (
        BankDetails(r.debtor.iban, r.debtor.bic, r.debtor.name) if r.HasField("debtor") else None
    )
    s = SettlementSettings(
        tenant_id=caller.tenant_id,
        requires_approval=r.requires_approval,
        schedule_time=r.schedule_time,
        time_zone=r.time_zone,
        schedule_currencies=tuple(r.schedule_currencies),
        debtor=debtor,
    )
    return settings_pb(await settlement.set_settings(s, caller=caller, deps=deps))


async def _import(r: pb.ImportBankStatementRequest, caller: Caller, deps: Deps) -> Any:
    row = await settlement.import_statement(r.content, r.format, caller=caller, deps=deps)
    return statement_pb(row)


async def _get_statement(r: pb.GetBankStatementRequest, caller: Caller, deps: Deps) -> Any:
    return statement_pb(await settlement.get_statement(r.id, caller=caller, deps=deps))


async def _list_statements(r: pb.ListBankStatementsRequest, caller: Caller, deps: Deps) -> Any:
    found, more = await settlement.list_statements(
        caller=caller, deps=deps, limit=r.limit, starting_after=r.starting_after
    )
    return pb.ListBankStatementsResponse(
        bank_statements=[statement_pb(s) for s in found], has_more=more
    )


async def _list_breaks(r: pb.ListReconciliationBreaksRequest, caller: Caller, deps: Deps) -> Any:
    found, more = await settlement.list_breaks(
        r.statement_id,
        r.status,
        caller=caller,
        deps=deps,
        limit=r.limit,
        starting_after=r.starting_after,
    )
    return pb.ListReconciliationBreaksResponse(breaks=[break_pb(b) for b in found], has_more=more)


async def _resolve(r: pb.ResolveReconciliationBreakRequest, caller: Caller, deps: Deps) -> Any:
    b = await settlement.resolve_break(
        r.id, r.action, r.object_id, r.note, r.resolved_by, caller=caller, deps=deps
    )
    return break_pb(b)


def _method(handler: Handler) -> Method:
    async def method(self: Any, request: Any, context: Context) -> Any:
        caller = await require_caller(context)
        return await handler(request, caller, self.deps)

    return method


_HANDLERS: dict[str, Handler] = {
    "CreateSettlementRun": _create_run,
    "GetSettlementRun": _get_run,
    "ListSettlementRuns": _list_runs,
    "ApproveSettlementRun": _approve,
    "GetSettlementReport": _report,
    "GetPayoutBatch": _batch,
    "GetPayoutBatchFile": _batch_file,
    "GetSettlementSettings": _get_settings,
    "SetSettlementSettings": _set_settings,
    "ImportBankStatement": _import,
    "GetBankStatement": _get_statement,
    "ListBankStatements": _list_statements,
    "ListReconciliationBreaks": _list_breaks,
    "ResolveReconciliationBreak": _resolve,
}

METHODS: dict[str, Method] = {name: _method(handler) for name, handler in _HANDLERS.items()}
