"""Settlement runs, batches, statements and breaks as the API shows them."""

from __future__ import annotations

import csv
import io

from paymesh.contracts.objects import format_time
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.features.settlement.schemas import (
    BankStatementOut,
    BreakOut,
    PayoutBatchOut,
    SettlementBankAccountOut,
    SettlementItemOut,
    SettlementLineOut,
    SettlementReportOut,
    SettlementRunOut,
    SettlementSettingsOut,
)

__all__ = [
    "REPORT_COLUMNS",
    "batch_view",
    "break_view",
    "report_csv",
    "report_view",
    "run_view",
    "settings_view",
    "statement_view",
]

# The columns of a run's CSV report, in order.
REPORT_COLUMNS = (
    "payment_id",
    "type",
    "gross",
    "fee",
    "net",
    "currency",
    "captured_at",
    "payout_id",
    "account_id",
    "object_id",
    "transfer_ids",
)


def _or_none(value: str) -> str | None:
    return value or None


def _time_or_none(us: int) -> str | None:
    return format_time(us) if us else None


def run_view(r: ppb.SettlementRun) -> SettlementRunOut:
    """A settlement run and its lines."""
    return SettlementRunOut(
        id=r.id,
        currency=r.currency,
        cutoff=format_time(r.cutoff_us),
        status=r.status,
        lines=[
            SettlementLineOut(
                account_id=line.account_id,
                gross=line.gross,
                refunds=line.refunds,
                fees=line.fees,
                carried_in=line.carried_in,
                net=line.net,
                status=line.status,
                payout_id=_or_none(line.payout_id),
                payout_status=_or_none(line.payout_status),
            )
            for line in r.lines
        ],
        payout_batch_id=_or_none(r.payout_batch_id),
        item_count=r.item_count,
        approved_by=_or_none(r.approved_by),
        approved=_time_or_none(r.approved_at_us),
        created=format_time(r.created_at_us),
    )


def _item_view(i: ppb.SettlementItem) -> SettlementItemOut:
    return SettlementItemOut(
        payment_id=i.payment_id,
        type=i.type,
        object_id=i.object_id,
        account_id=i.account_id,
        gross=i.gross,
        fee=i.fee,
        net=i.net,
        currency=i.currency,
        captured_at=format_time(i.at_us),
        payout_id=_or_none(i.payout_id),
        transfer_ids=list(i.transfer_ids),
    )


def report_view(r: ppb.SettlementReport) -> SettlementReportOut:
    """A run and its items."""
    return SettlementReportOut(run=run_view(r.run), items=[_item_view(i) for i in r.items])


def _cell(value: object) -> str:
    """A CSV cell that no spreadsheet reads as a formula."""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def report_csv(r: ppb.SettlementReport) -> str:
    """A run's items as CSV, one row per capture or refund, with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for i in r.items:
        item = _item_view(i)
        row = item.model_dump()
        row["transfer_ids"] = " ".join(item.transfer_ids)
        row["payout_id"] = item.payout_id or ""
        # Amounts are numbers (a refund's net is negative, not a formula): written as they are.
        writer.writerow(
            row[c] if c in ("gross", "fee", "net") else _cell(row[c]) for c in REPORT_COLUMNS
        )
    return out.getvalue()


def batch_view(b: ppb.PayoutBatch) -> PayoutBatchOut:
    """A payout batch."""
    return PayoutBatchOut(
        id=b.id,
        run_id=b.run_id,
        currency=b.currency,
        payout_ids=list(b.payout_ids),
        total=b.total,
        created=format_time(b.created_at_us),
    )


def settings_view(s: ppb.SettlementSettings) -> SettlementSettingsOut:
    """A tenant's settlement settings."""
    debtor = (
        SettlementBankAccountOut(iban=s.debtor.iban, bic=s.debtor.bic, name=s.debtor.name)
        if s.HasField("debtor")
        else None
    )
    return SettlementSettingsOut(
        requires_approval=s.requires_approval,
        schedule_time=_or_none(s.schedule_time),
        time_zone=_or_none(s.time_zone),
        schedule_currencies=list(s.schedule_currencies),
        debtor=debtor,
    )


def statement_view(s: ppb.BankStatement) -> BankStatementOut:
    """An imported statement and its report."""
    return BankStatementOut(
        id=s.id,
        statement_id=s.statement_id,
        account_iban=s.account_iban,
        currency=s.currency,
        from_date=_or_none(s.from_date),
        to_date=_or_none(s.to_date),
        entry_count=s.entry_count,
        counts=dict(s.counts),
        sums=dict(s.sums),
        created=format_time(s.created_at_us),
    )


def break_view(b: ppb.ReconciliationBreak) -> BreakOut:
    """A reconciliation break."""
    return BreakOut(
        id=b.id,
        statement_id=b.statement_id,
        type=b.type,
        amount=b.amount,
        expected_amount=b.expected_amount or None,
        currency=b.currency,
        reference=b.reference,
        object_id=_or_none(b.object_id),
        direction="credit" if b.credit else "debit",
        return_reason=_or_none(b.return_reason),
        booked_on=_or_none(b.booked_on),
        status=b.status,
        resolution=_or_none(b.resolution),
        resolved_object_id=_or_none(b.resolved_object_id),
        note=_or_none(b.note),
        resolved_by=_or_none(b.resolved_by),
        resolved=_time_or_none(b.resolved_at_us),
        transfer_id=_or_none(b.transfer_id),
        created=format_time(b.created_at_us),
    )
