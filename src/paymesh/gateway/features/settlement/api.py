"""REST routes for settlement (runs, their reports and payout batches, settings) and
reconciliation (bank statements in, breaks out). See docs/settlement.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Header, Query
from starlette.responses import Response

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.deps import Audit, Payments, json_out
from paymesh.gateway.domain import SETTLEMENT_READ, SETTLEMENT_WRITE
from paymesh.gateway.errors import Unprocessable, UnsupportedMediaType
from paymesh.gateway.features.settlement.schemas import (
    BankStatementList,
    BankStatementOut,
    BreakList,
    BreakOut,
    CreateSettlementRunIn,
    PayoutBatchOut,
    ResolveBreakIn,
    SettlementReportOut,
    SettlementRunList,
    SettlementRunOut,
    SettlementSettingsIn,
    SettlementSettingsOut,
)
from paymesh.gateway.features.settlement.views import (
    batch_view,
    break_view,
    report_csv,
    report_view,
    run_view,
    settings_view,
    statement_view,
)
from paymesh.gateway.idempotency import KeyedRequest
from paymesh.gateway.pages import GET_PROBLEMS, LIST_PROBLEMS, PageArgs, page_args, page_out
from paymesh.gateway.routing import Routes
from paymesh.platform.identity import Caller

__all__ = ["BANK_STATEMENTS_PATH", "routes"]

routes = Routes(tag="settlement")

BANK_STATEMENTS_PATH = "/v1/bank_statements"
WRITE_PROBLEMS = (400, 401, 403, 404, 409, 422, 503)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A statement's format by the request's media type.
_FORMATS = {
    "application/xml": "camt.053",
    "text/xml": "camt.053",
    "text/csv": "csv",
}

ObjectIdQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@routes.post(
    "/v1/settlement_runs",
    scope=SETTLEMENT_WRITE,
    summary="Run a settlement",
    status_code=201,
    response_model=SettlementRunOut,
    problems=WRITE_PROBLEMS,
)
async def post_settlement_run(
    body: CreateSettlementRunIn,
    caller: Caller,
    keyed: KeyedRequest,
    payments: Payments,
    audit: Audit,
) -> Response:
    """Settle the tenant's merchant accounts in one currency up to `cutoff`.

    Every capture and refund final by the cutoff that no earlier run counted
    is counted once; each merchant account gets a line (gross, refunds, fees,
    what its last run carried forward, and the net). A positive net with bank
    details on the account becomes a payout (listed in the run's payout
    batch), or waits for `POST /v1/settlement_runs/{id}/approve` when the
    tenant's settings require approval; a negative one is carried forward.
    The same cutoff again answers the same run; a cutoff in the future is a
    422, one before the last run's a 409 `cutoff_before_last_run`.
    """
    cutoff_us = (body.cutoff - _EPOCH) // timedelta(microseconds=1)
    request = ppb.CreateSettlementRunRequest(currency=body.currency, cutoff_us=cutoff_us)
    run = await payments.call(payments.stub.CreateSettlementRun, request, caller)
    await audit(
        caller,
        "settlement_run.created",
        target=run.id,
        details={"currency": run.currency, "status": run.status},
    )
    return json_out(run_view(run), 201, headers={"Location": f"/v1/settlement_runs/{run.id}"})


@routes.get(
    "/v1/settlement_runs",
    scope=SETTLEMENT_READ,
    summary="List settlement runs",
    response_model=SettlementRunList,
    problems=LIST_PROBLEMS,
)
async def list_settlement_runs(
    caller: Caller,
    payments: Payments,
    page: Annotated[PageArgs, page_args("The last run id of the previous page.")],
) -> Response:
    """The tenant's settlement runs, newest first."""
    request = ppb.ListSettlementRunsRequest(limit=page.limit, starting_after=page.starting_after)
    found = await payments.call(payments.stub.ListSettlementRuns, request, caller)
    return page_out(SettlementRunList, run_view, found.settlement_runs, found.has_more)


@routes.get(
    "/v1/settlement_runs/{run_id}",
    scope=SETTLEMENT_READ,
    summary="Get a settlement run",
    response_model=SettlementRunOut,
    problems=GET_PROBLEMS,
)
async def get_settlement_run(run_id: str, caller: Caller, payments: Payments) -> Response:
    """A settlement run of the tenant, with its lines and their payouts' statuses."""
    request = ppb.GetSettlementRunRequest(id=run_id)
    return json_out(run_view(await payments.call(payments.stub.GetSettlementRun, request, caller)))


@routes.post(
    "/v1/settlement_runs/{run_id}/approve",
    scope=SETTLEMENT_WRITE,
    summary="Approve a settlement run",
    response_model=SettlementRunOut,
    problems=WRITE_PROBLEMS,
)
async def approve_settlement_run(
    run_id: str, caller: Caller, keyed: KeyedRequest, payments: Payments, audit: Audit
) -> Response:
    """Pay out a run that waits for approval; approving it again answers it as it is."""
    request = ppb.ApproveSettlementRunRequest(id=run_id, approved_by=caller.client_id)
    run = await payments.call(payments.stub.ApproveSettlementRun, request, caller)
    await audit(caller, "settlement_run.approved", target=run.id)
    return json_out(run_view(run))


async def _report(
    run_id: str, account_id: str | None, caller: Caller, payments: Payments
) -> ppb.SettlementReport:
    request = ppb.GetSettlementReportRequest(run_id=run_id, account_id=account_id or "")
    report: ppb.SettlementReport = await payments.call(
        payments.stub.GetSettlementReport, request, caller
    )
    return report


@routes.get(
    "/v1/settlement_runs/{run_id}/report",
    scope=SETTLEMENT_READ,
    summary="A settlement run's report",
    response_model=SettlementReportOut,
    problems=GET_PROBLEMS,
)
async def get_settlement_report(
    run_id: str, caller: Caller, payments: Payments, account_id: ObjectIdQuery = None
) -> Response:
    """The run and every capture and refund it counts (one merchant's with `account_id`)."""
    return json_out(report_view(await _report(run_id, account_id, caller, payments)))


@routes.get(
    "/v1/settlement_runs/{run_id}/report.csv",
    scope=SETTLEMENT_READ,
    summary="A settlement run's report as CSV",
    problems=GET_PROBLEMS,
)
async def get_settlement_report_csv(
    run_id: str, caller: Caller, payments: Payments, account_id: ObjectIdQuery = None
) -> Response:
    """The run's items as CSV: payment_id, type, gross, fee, net, currency, captured_at,
    payout_id, account_id, object_id, transfer_ids (one merchant's with `account_id`)."""
    report = await _report(run_id, account_id, caller, payments)
    return Response(
        report_csv(report).encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{report.run.id}.csv"'},
    )


@routes.get(
    "/v1/payout_batches/{batch_id}",
    scope=SETTLEMENT_READ,
    summary="Get a payout batch",
    response_model=PayoutBatchOut,
    problems=GET_PROBLEMS,
)
async def get_payout_batch(batch_id: str, caller: Caller, payments: Payments) -> Response:
    """A run's payouts as one batch."""
    request = ppb.GetPayoutBatchRequest(id=batch_id)
    return json_out(batch_view(await payments.call(payments.stub.GetPayoutBatch, request, caller)))


@routes.get(
    "/v1/payout_batches/{batch_id}/pain.001",
    scope=SETTLEMENT_READ,
    summary="A payout batch as an ISO 20022 pain.001 file",
    problems=(*GET_PROBLEMS, 409),
)
async def get_payout_batch_file(batch_id: str, caller: Caller, payments: Payments) -> Response:
    """The batch as an ISO 20022 pain.001.001.09 credit-transfer initiation (XML), one
    transfer per payout, its `EndToEndId` the payout id."""
    request = ppb.GetPayoutBatchRequest(id=batch_id)
    found = await payments.call(payments.stub.GetPayoutBatchFile, request, caller)
    return Response(
        found.content,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


@routes.get(
    "/v1/settlement_settings",
    scope=SETTLEMENT_READ,
    summary="Get the settlement settings",
    response_model=SettlementSettingsOut,
    problems=(401, 403, 503),
)
async def get_settlement_settings(caller: Caller, payments: Payments) -> Response:
    """How the tenant settles: approval, the daily schedule, the account paid from."""
    request = ppb.GetSettlementSettingsRequest()
    found = await payments.call(payments.stub.GetSettlementSettings, request, caller)
    return json_out(settings_view(found))


@routes.route(
    "PUT",
    "/v1/settlement_settings",
    scope=SETTLEMENT_WRITE,
    summary="Set the settlement settings",
    response_model=SettlementSettingsOut,
    problems=(400, 401, 403, 422, 503),
)
async def put_settlement_settings(
    body: SettlementSettingsIn, caller: Caller, payments: Payments, audit: Audit
) -> Response:
    """Whether runs wait for approval; a daily schedule (`schedule_time` HH:MM in
    `time_zone`, for `schedule_currencies`); the tenant's bank account payouts are paid
    from (`debtor`, the pain.001 debtor)."""
    debtor = (
        ppb.BankAccountDetails(iban=body.debtor.iban, bic=body.debtor.bic, name=body.debtor.name)
        if body.debtor
        else None
    )
    request = ppb.SettlementSettings(
        requires_approval=body.requires_approval,
        schedule_time=body.schedule_time or "",
        time_zone=body.time_zone or "",
        schedule_currencies=body.schedule_currencies,
        debtor=debtor,
    )
    found = await payments.call(payments.stub.SetSettlementSettings, request, caller)
    await audit(caller, "settlement_settings.updated", target=caller.tenant_id)
    return json_out(settings_view(found))


@routes.post(
    BANK_STATEMENTS_PATH,
    scope=SETTLEMENT_WRITE,
    summary="Import a bank statement",
    status_code=201,
    response_model=BankStatementOut,
    problems=(400, 401, 403, 409, 413, 415, 422, 503),
)
async def post_bank_statement(
    caller: Caller,
    keyed: KeyedRequest,
    payments: Payments,
    audit: Audit,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    """Import a bank statement and reconcile it with the ledger.

    The body is the file: an ISO 20022 camt.053 statement (`Content-Type:
    application/xml`) or the CSV layout of docs/settlement.md (`text/csv`).
    Each line is matched: payouts by `EndToEndId`, top-ups by reference; the
    answer counts the lines per result, and each line that did not match is a
    break (`GET /v1/reconciliation/breaks?statement_id=`). A return line
    reverses its payout, once. A malformed file is a 422 `invalid_bank_file`;
    a statement already imported (its bank statement id) a 409
    `duplicate_statement`.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = _FORMATS.get(media)
    if fmt is None:
        raise UnsupportedMediaType("send the statement as application/xml (camt.053) or text/csv")
    content = keyed.body
    if not content.strip():
        raise Unprocessable("the statement is empty", code="invalid_bank_file")
    call = ppb.ImportBankStatementRequest(content=content, format=fmt)
    found = await payments.call(payments.stub.ImportBankStatement, call, caller)
    await audit(
        caller,
        "bank_statement.imported",
        target=found.id,
        details={"statement_id": found.statement_id[:140], "counts": dict(found.counts)},
    )
    return json_out(
        statement_view(found), 201, headers={"Location": f"{BANK_STATEMENTS_PATH}/{found.id}"}
    )


@routes.get(
    BANK_STATEMENTS_PATH,
    scope=SETTLEMENT_READ,
    summary="List bank statements",
    response_model=BankStatementList,
    problems=LIST_PROBLEMS,
)
async def list_bank_statements(
    caller: Caller,
    payments: Payments,
    page: Annotated[PageArgs, page_args("The last statement id of the previous page.")],
) -> Response:
    """The tenant's imported statements, newest first, each with its report."""
    request = ppb.ListBankStatementsRequest(limit=page.limit, starting_after=page.starting_after)
    found = await payments.call(payments.stub.ListBankStatements, request, caller)
    return page_out(BankStatementList, statement_view, found.bank_statements, found.has_more)


@routes.get(
    BANK_STATEMENTS_PATH + "/{statement_id}",
    scope=SETTLEMENT_READ,
    summary="Get a bank statement",
    response_model=BankStatementOut,
    problems=GET_PROBLEMS,
)
async def get_bank_statement(statement_id: str, caller: Caller, payments: Payments) -> Response:
    """An imported statement and its reconciliation report: lines and sums per result."""
    request = ppb.GetBankStatementRequest(id=statement_id)
    found = await payments.call(payments.stub.GetBankStatement, request, caller)
    return json_out(statement_view(found))


@routes.get(
    "/v1/reconciliation/breaks",
    scope=SETTLEMENT_READ,
    summary="List reconciliation breaks",
    response_model=BreakList,
    problems=LIST_PROBLEMS,
)
async def list_breaks(
    caller: Caller,
    payments: Payments,
    page: Annotated[PageArgs, page_args("The last break id of the previous page.")],
    statement_id: ObjectIdQuery = None,
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
) -> Response:
    """The tenant's breaks, oldest first: one statement's with `statement_id`, and only
    the `open` or `resolved` ones with `status`."""
    request = ppb.ListReconciliationBreaksRequest(
        statement_id=statement_id or "",
        status=status or "",
        limit=page.limit,
        starting_after=page.starting_after,
    )
    found = await payments.call(payments.stub.ListReconciliationBreaks, request, caller)
    return page_out(BreakList, break_view, found.breaks, found.has_more)


@routes.post(
    "/v1/reconciliation/breaks/{break_id}/resolve",
    scope=SETTLEMENT_WRITE,
    summary="Resolve a reconciliation break",
    response_model=BreakOut,
    problems=WRITE_PROBLEMS,
)
async def resolve_break(
    break_id: str,
    body: ResolveBreakIn,
    caller: Caller,
    keyed: KeyedRequest,
    payments: Payments,
    audit: Audit,
) -> Response:
    """`match_to` the object the line is (`object_id`), `write_off` the difference to the
    tenant's suspense account (an adjustment transfer, in the audit log with the note), or
    `ignore` it. A resolved break is a 409 `break_already_resolved`."""
    request = ppb.ResolveReconciliationBreakRequest(
        id=break_id,
        action=body.action,
        object_id=body.object_id or "",
        note=body.note,
        resolved_by=caller.client_id,
    )
    found = await payments.call(payments.stub.ResolveReconciliationBreak, request, caller)
    await audit(
        caller,
        "reconciliation_break.resolved",
        target=found.id,
        details={
            "action": found.resolution,
            "note": found.note,
            "type": found.type,
            "amount": found.amount,
            "transfer_id": found.transfer_id,
        },
    )
    return json_out(break_view(found))
