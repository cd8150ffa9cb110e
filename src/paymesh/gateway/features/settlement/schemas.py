"""The request and response bodies of settlement and reconciliation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StrictBool

from paymesh.gateway.schemas import Currency, _In, _Out
from paymesh.gateway.text import Text

__all__ = [
    "BankStatementList",
    "BankStatementOut",
    "BreakList",
    "BreakOut",
    "CreateSettlementRunIn",
    "PayoutBatchOut",
    "ResolveBreakIn",
    "SettlementBankAccountIn",
    "SettlementBankAccountOut",
    "SettlementItemOut",
    "SettlementLineOut",
    "SettlementReportOut",
    "SettlementRunList",
    "SettlementRunOut",
    "SettlementSettingsIn",
    "SettlementSettingsOut",
]


class CreateSettlementRunIn(_In):
    """Settle one currency of the tenant up to a cutoff."""

    currency: Currency
    cutoff: AwareDatetime = Field(
        description="RFC 3339 time with its offset; not in the future, not before the last run's."
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"currency": "EUR", "cutoff": "2026-12-06T00:00:00Z"}]}
    )


class SettlementLineOut(_Out):
    """One merchant account's due in a run."""

    account_id: str
    gross: int = Field(description="Captured, in minor units.")
    refunds: int
    fees: int
    carried_in: int = Field(description="What the account's last run carried forward.")
    net: int = Field(description="gross - refunds - fees + carried_in.")
    status: str = Field(
        description="payout, awaiting_approval, carried_forward (zero or negative) or"
        " no_bank_account (positive, nowhere to pay: carried forward)."
    )
    payout_id: str | None
    payout_status: str | None


class SettlementRunOut(_Out):
    """A settlement run."""

    id: str
    object: Literal["settlement_run"] = "settlement_run"
    currency: str
    cutoff: str
    status: str = Field(description="paid_out, pending_approval or nothing_to_pay.")
    lines: list[SettlementLineOut]
    payout_batch_id: str | None = Field(
        description="Null when nothing is paid out or approval is pending."
    )
    item_count: int
    approved_by: str | None
    approved: str | None
    created: str


class SettlementRunList(_Out):
    """A page of settlement runs, newest first."""

    object: Literal["list"] = "list"
    data: list[SettlementRunOut]
    has_more: bool


class SettlementItemOut(_Out):
    """A capture or a refund a run counts."""

    payment_id: str
    type: str = Field(description="capture or refund.")
    object_id: str = Field(description="The payment (a capture) or the refund.")
    account_id: str
    gross: int
    fee: int
    net: int
    currency: str
    captured_at: str = Field(description="When it became final (captured, or refunded).")
    payout_id: str | None
    transfer_ids: list[str] = Field(description="The ledger transfers it sums.")


class SettlementReportOut(_Out):
    """A run and every item it counts."""

    object: Literal["settlement_report"] = "settlement_report"
    run: SettlementRunOut
    items: list[SettlementItemOut]


class PayoutBatchOut(_Out):
    """The payouts of a run, as one bank file."""

    id: str
    object: Literal["payout_batch"] = "payout_batch"
    run_id: str
    currency: str
    payout_ids: list[str]
    total: int
    created: str


class SettlementBankAccountIn(_In):
    """A bank account (ISO 20022 party)."""

    iban: Annotated[Text, Field(min_length=5, max_length=42)]
    bic: Annotated[Text, Field(min_length=8, max_length=11)]
    name: Annotated[Text, Field(min_length=1, max_length=70)]


class SettlementBankAccountOut(_Out):
    """A bank account."""

    iban: str
    bic: str
    name: str


class SettlementSettingsIn(_In):
    """How the tenant settles."""

    requires_approval: StrictBool = False
    schedule_time: Annotated[Text, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] | None = (
        Field(default=None, description="HH:MM (24 h) of a daily run (null: no schedule).")
    )
    time_zone: Annotated[Text, Field(max_length=64)] | None = Field(
        default=None, description="IANA time zone of the schedule, e.g. Europe/Berlin."
    )
    schedule_currencies: list[Currency] = Field(default_factory=list, max_length=20)
    debtor: SettlementBankAccountIn | None = Field(
        default=None, description="The tenant's account payouts are paid from."
    )


class SettlementSettingsOut(_Out):
    """How the tenant settles."""

    object: Literal["settlement_settings"] = "settlement_settings"
    requires_approval: bool
    schedule_time: str | None
    time_zone: str | None
    schedule_currencies: list[str]
    debtor: SettlementBankAccountOut | None


class BankStatementOut(_Out):
    """An imported bank statement and its reconciliation report."""

    id: str
    object: Literal["bank_statement"] = "bank_statement"
    statement_id: str = Field(description="The bank's own id of the statement (Stmt/Id).")
    account_iban: str
    currency: str
    from_date: str | None
    to_date: str | None
    entry_count: int
    counts: dict[str, int] = Field(
        description="Lines per result: matched, amount_mismatch, unmatched_bank, returned;"
        " and unmatched_ledger (ledger payouts of the period the statement lacks)."
    )
    sums: dict[str, int]
    created: str


class BankStatementList(_Out):
    """A page of bank statements, newest first."""

    object: Literal["list"] = "list"
    data: list[BankStatementOut]
    has_more: bool


class BreakOut(_Out):
    """A reconciliation break: a line (or a ledger payout) that did not match."""

    id: str
    object: Literal["reconciliation_break"] = "reconciliation_break"
    statement_id: str
    type: str = Field(description="amount_mismatch, unmatched_bank, unmatched_ledger, returned.")
    amount: int
    expected_amount: int | None
    currency: str
    reference: str
    object_id: str | None
    direction: str = Field(description="credit or debit, as the bank booked it.")
    return_reason: str | None
    booked_on: str | None
    status: str = Field(description="open or resolved.")
    resolution: str | None
    resolved_object_id: str | None
    note: str | None
    resolved_by: str | None
    resolved: str | None
    transfer_id: str | None = Field(description="A write-off's adjustment transfer.")
    created: str


class BreakList(_Out):
    """A page of breaks, oldest first."""

    object: Literal["list"] = "list"
    data: list[BreakOut]
    has_more: bool


class ResolveBreakIn(_In):
    """How an operator resolves a break."""

    action: Literal["match_to", "write_off", "ignore"]
    object_id: Annotated[Text, Field(max_length=64)] | None = Field(
        default=None, description="match_to: the payout, top-up or top-up reversal it is."
    )
    note: Annotated[Text, Field(max_length=1000)] = ""
