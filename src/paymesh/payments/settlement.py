"""Settlement and reconciliation use cases (docs/settlement.md).

Settlement: :func:`create_run` makes a tenant's run of one currency up to a
cutoff (the model is :mod:`paymesh.payments.domain.settlement`), and pays its
positive lines out through the payout saga — at once, or on
:func:`approve_run` when the tenant's settings ask for approval. The payouts
of a run form its payout batch, exported as an ISO 20022 pain.001 file
(:func:`batch_file`). Paying is idempotent: every payout id is derived from
the run and the account, so answering a run again (the same cutoff) resumes
whatever a crash left unpaid, and pays nothing twice.

Reconciliation: :func:`import_statement` reads a camt.053 (or CSV) bank
statement, matches each line to the ledger
(:mod:`paymesh.payments.domain.reconciliation`), reverses returned payouts
through the payout-return saga (once per payout), and records the statement,
its lines and its breaks at once. :func:`resolve_break` is the operator's.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from paymesh.payments import bankfiles, domain, service
from paymesh.payments.domain import CreatePayout, Transfer
from paymesh.payments.domain.reconciliation import (
    Candidate,
    Entry,
    Result,
    Tolerance,
    lookup_key,
    match_entry,
    suspense_account_id,
    validate_resolution,
    write_off_direction,
)
from paymesh.payments.domain.settlement import (
    BankDetails,
    LineStatus,
    RunStatus,
    SettlementItem,
    SettlementLine,
    SettlementRun,
    SettlementSettings,
    batch_id_of,
    lines_of,
    run_id_of,
    validate_cutoff,
)
from paymesh.payments.errors import (
    BreakResolved,
    CutoffBeforeLastRun,
    DuplicateStatement,
    Forbidden,
    InvalidBankFile,
    InvalidRequest,
    InvalidState,
    NotFound,
    PaymentsError,
    StatementAccountMismatch,
    TransientError,
)
from paymesh.payments.flows import payout_return
from paymesh.payments.flows.base import funding, ledger_results, open_account
from paymesh.payments.ports import LedgerAccount
from paymesh.payments.saga import Deps, with_retries
from paymesh.payments.settlement_store import (
    BreakRow,
    DuplicateStatementRow,
    SettlementStore,
    StatementRaced,
)
from paymesh.payments.tables import StatementRow
from paymesh.platform.banking import InvalidBankDetails, bank_account
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger
from paymesh.platform.metrics import (
    RECONCILIATION_BREAKS_RESOLVED,
    RECONCILIATION_LINES,
    SETTLEMENT_PAYOUT_AMOUNT,
    SETTLEMENT_PAYOUTS,
    SETTLEMENT_RUNS,
)
from paymesh.platform.money import is_valid_currency

__all__ = [
    "DEMO_DEBTOR",
    "RunView",
    "approve_run",
    "batch_file",
    "batch_lines",
    "create_run",
    "get_batch",
    "get_run",
    "get_settings",
    "get_statement",
    "import_statement",
    "list_breaks",
    "list_runs",
    "list_statements",
    "report",
    "resolve_break",
    "run_due_schedules",
    "set_settings",
]

log = get_logger(__name__)

SERVICE = "payments"
US = 1_000_000
DAY_US = 86_400 * US

# The account payouts are paid from when a tenant has not set its own (the demo's bank).
DEMO_DEBTOR = BankDetails("DE89370400440532013000", "COBADEFFXXX", "paymesh demo platform")

# The statement formats import_statement reads.
FORMATS = ("camt.053", "csv")


@dataclass(frozen=True)
class RunView:
    """A run with what its answer shows beside it: its payouts' statuses, its item count."""

    run: SettlementRun
    payout_statuses: dict[str, str]
    item_count: int


READ_SCOPE = "settlement:read"
WRITE_SCOPE = "settlement:write"


def _store(deps: Deps) -> SettlementStore:
    return SettlementStore(deps.store.db)


def _may_write(caller: Caller) -> None:
    """Refuse a caller without the settlement:write scope (the gateway checks it too)."""
    if WRITE_SCOPE not in caller.scopes:
        raise Forbidden(f"this needs the {WRITE_SCOPE} scope")


def _may_read(caller: Caller) -> None:
    """Refuse a caller without settlement:read (or settlement:write)."""
    if READ_SCOPE not in caller.scopes and WRITE_SCOPE not in caller.scopes:
        raise Forbidden(f"this needs the {READ_SCOPE} scope")


# -- settings ------------------------------------------------------------------------


async def get_settings(*, caller: Caller, deps: Deps) -> SettlementSettings:
    """The caller tenant's settlement settings."""
    _may_read(caller)
    return await _store(deps).get_settings(caller.tenant_id)


def _validate_settings(s: SettlementSettings) -> None:
    if s.schedule_time:
        try:
            dt.time.fromisoformat(s.schedule_time)
        except ValueError:
            raise InvalidRequest("schedule_time must be HH:MM") from None
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", s.schedule_time):
            raise InvalidRequest("schedule_time must be HH:MM")
        if not s.schedule_currencies:
            raise InvalidRequest("a schedule needs schedule_currencies")
    try:
        ZoneInfo(s.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"time_zone: unknown time zone {s.time_zone[:64]!r}") from None
    for c in s.schedule_currencies:
        if not is_valid_currency(c):
            raise InvalidRequest(f"schedule_currencies: unknown currency {c[:8]!r}")


def validate_bank_details(b: BankDetails, field: str) -> BankDetails:
    """The bank details normalised; refused when invalid (IBAN checksum, BIC, name)."""
    try:
        valid = bank_account(b.iban, b.bic, b.name)
    except InvalidBankDetails as exc:
        raise InvalidRequest(f"{field}.{exc}") from None
    return BankDetails(valid.iban, valid.bic, valid.name)


async def set_settings(s: SettlementSettings, *, caller: Caller, deps: Deps) -> SettlementSettings:
    """Set the caller tenant's settlement settings (approval, schedule, debtor account)."""
    _may_write(caller)
    s = replace(
        s,
        tenant_id=caller.tenant_id,
        schedule_currencies=tuple(dict.fromkeys(s.schedule_currencies)),
        debtor=None if s.debtor is None else validate_bank_details(s.debtor, "debtor"),
        updated_at_us=deps.clock.now_us(),
    )
    _validate_settings(s)
    await _store(deps).set_settings(s)
    return s


# -- runs ----------------------------------------------------------------------------


MERCHANT = "merchant"  # the code (REST type) of the accounts settlement pays


async def _merchants(
    caller: Caller, deps: Deps, account_ids: Sequence[str]
) -> dict[str, BankDetails | None]:
    """The merchant accounts among `account_ids`, each with the bank details stored on it
    now (None: none). Other accounts (customers, unknown ones) are left out."""
    if not account_ids:
        return {}
    found: list[LedgerAccount] = await with_retries(
        deps.retry, partial(deps.ledger.lookup_accounts, caller, list(account_ids), fresh=True)
    )
    details: dict[str, BankDetails | None] = {}
    for a in found:
        if a.code != MERCHANT:
            continue
        bank = a.bank_account
        details[a.id] = BankDetails(bank.iban, bank.bic, bank.name) if bank and bank.iban else None
    return details


async def create_run(
    currency: str, cutoff_us: int, *, caller: Caller, deps: Deps, now_us: int | None = None
) -> RunView:
    """The caller tenant's run of `currency` up to `cutoff_us`: made now, or the one
    already made for that cutoff; its positive lines paid out unless approval is needed."""
    _may_write(caller)
    if not is_valid_currency(currency):
        raise InvalidRequest("currency must be a known ISO 4217 code")
    store = _store(deps)
    now = deps.clock.now_us() if now_us is None else now_us
    settings = await store.get_settings(caller.tenant_id)

    async def make(
        items: list[SettlementItem],
        carried: dict[str, int],
        last_cutoff: int | None,
        returned: dict[str, set[str]],
    ) -> SettlementRun:
        validate_cutoff(cutoff_us, now, last_cutoff)
        run_id = run_id_of(caller.tenant_id, currency, cutoff_us)
        accounts = sorted({i.account_id for i in items} | set(carried))
        banks = await _merchants(caller, deps, accounts)
        settled = tuple(i for i in items if i.account_id in banks)
        kept = {a: n for a, n in carried.items() if a in banks}
        lines = lines_of(
            run_id, settled, kept, banks, approval=settings.requires_approval, returned=returned
        )
        paid = any(line.payout_id for line in lines)
        if paid and settings.requires_approval:
            status = RunStatus.PENDING_APPROVAL
        elif paid:
            status = RunStatus.PAID_OUT
        else:
            status = RunStatus.NOTHING_TO_PAY
        return SettlementRun(
            id=run_id,
            tenant_id=caller.tenant_id,
            currency=currency,
            cutoff_us=cutoff_us,
            created_at_us=now,
            status=status,
            lines=lines,
            payout_batch_id=batch_id_of(run_id) if status is RunStatus.PAID_OUT else None,
            items=settled,
        )

    run, new = await store.make_run(caller.tenant_id, currency, cutoff_us, now, make)
    if new:
        SETTLEMENT_RUNS.labels(SERVICE, run.status.value).inc()
        log.info(
            "settlement_run_made",
            run_id=run.id,
            tenant_id=run.tenant_id,
            currency=currency,
            lines=len(run.lines),
            status=run.status.value,
        )
    if run.status is RunStatus.PAID_OUT:
        await _pay(run, settings, caller=caller, deps=deps, first=new)
    return await _view(run, deps)


async def _pay(
    run: SettlementRun,
    settings: SettlementSettings,
    *,
    caller: Caller,
    deps: Deps,
    first: bool,
    record_batch: bool = True,
) -> None:
    """Record the run's batch and start a payout per paid line (each once, by its id)."""
    paid = [line for line in run.lines if line.status is LineStatus.PAYOUT and line.payout_id]
    if not paid or run.payout_batch_id is None:
        return
    if record_batch:
        await _store(deps).add_batch(_batch_row(run, settings))
    for line in paid:
        assert line.payout_id is not None
        cmd = CreatePayout(line.payout_id, line.account_id, line.net, run.currency)
        try:
            await service.create_payout(cmd, caller=caller, deps=deps)
        except TransientError as exc:
            # Not known yet (accounts unreachable): answering the run again resumes it.
            log.warning("settlement_payout_waits", run_id=run.id, payout_id=cmd.id, code=exc.code)
            continue
        except PaymentsError as exc:
            # Refused for good: the line is marked, and the next run carries its net in.
            log.warning("settlement_payout_refused", run_id=run.id, payout_id=cmd.id, code=exc.code)
            await _store(deps).refuse_line(run.id, line.account_id)
            continue
        if first:
            SETTLEMENT_PAYOUTS.labels(SERVICE, run.currency).inc()
            SETTLEMENT_PAYOUT_AMOUNT.labels(SERVICE, run.currency).inc(line.net)


def _batch_row(run: SettlementRun, settings: SettlementSettings) -> dict[str, Any]:
    debtor = settings.debtor or DEMO_DEBTOR
    total = sum(line.net for line in run.lines if line.payout_id)
    return {
        "id": batch_id_of(run.id),
        "tenant_id": run.tenant_id,
        "run_id": run.id,
        "currency": run.currency,
        "total": total,
        "debtor_iban": debtor.iban,
        "debtor_bic": debtor.bic,
        "debtor_name": debtor.name,
        "created_at_us": run.approved_at_us or run.created_at_us,
    }


async def _view(run: SettlementRun, deps: Deps) -> RunView:
    store = _store(deps)
    ids = [line.payout_id for line in run.lines if line.payout_id]
    statuses = await store.payout_statuses(ids)
    return RunView(run, statuses, await store.item_count(run.id))


async def _get(run_id: str, caller: Caller, deps: Deps) -> SettlementRun:
    run = await _store(deps).get_run(caller.tenant_id, run_id)
    if run is None:
        raise NotFound(f"no settlement run {run_id}")
    return run


async def get_run(run_id: str, *, caller: Caller, deps: Deps) -> RunView:
    """The caller tenant's run."""
    _may_read(caller)
    return await _view(await _get(run_id, caller, deps), deps)


async def list_runs(
    *, caller: Caller, deps: Deps, limit: int = 0, starting_after: str = ""
) -> tuple[list[RunView], bool]:
    """The caller tenant's runs, newest first; and whether more follow."""
    _may_read(caller)
    limit = service.page_limit(limit)
    cursor = None
    if starting_after:
        cursor = await _store(deps).get_run(caller.tenant_id, starting_after)
        if cursor is None:
            raise InvalidRequest(f"starting_after: no settlement run {starting_after}")
    runs, more = await _store(deps).list_runs(caller.tenant_id, limit=limit, starting_after=cursor)
    return [await _view(r, deps) for r in runs], more


async def approve_run(run_id: str, approved_by: str, *, caller: Caller, deps: Deps) -> RunView:
    """Pay out a run that waits for approval (again: the run as it is)."""
    _may_write(caller)
    run = await _get(run_id, caller, deps)
    if run.status is RunStatus.PAID_OUT:
        return await _view(run, deps)
    if run.status is not RunStatus.PENDING_APPROVAL:
        raise InvalidState(f"settlement run {run_id} is {run.status.value}: nothing to approve")
    now = deps.clock.now_us()
    settings = await _store(deps).get_settings(caller.tenant_id)
    approved = replace(
        run,
        status=RunStatus.PAID_OUT,
        payout_batch_id=batch_id_of(run.id),
        approved_by=approved_by[:200],
        approved_at_us=now,
        lines=tuple(
            replace(line, status=LineStatus.PAYOUT)
            if line.status is LineStatus.AWAITING_APPROVAL
            else line
            for line in run.lines
        ),
    )
    first = await _store(deps).approve(
        run, _batch_row(approved, settings), approved.approved_by, now
    )
    run = await _get(run_id, caller, deps)
    await _pay(run, settings, caller=caller, deps=deps, first=first, record_batch=False)
    return await _view(run, deps)


async def report(
    run_id: str, account_id: str, *, caller: Caller, deps: Deps
) -> tuple[RunView, list[SettlementItem]]:
    """A run and its items (one account's, when named)."""
    _may_read(caller)
    view = await get_run(run_id, caller=caller, deps=deps)
    return view, await _store(deps).items(run_id, account_id)


async def get_batch(batch_id: str, *, caller: Caller, deps: Deps) -> tuple[dict[str, Any], RunView]:
    """The caller tenant's payout batch, and its run."""
    _may_read(caller)
    batch = await _store(deps).get_batch(caller.tenant_id, batch_id)
    if batch is None:
        raise NotFound(f"no payout batch {batch_id}")
    return batch, await get_run(batch["run_id"], caller=caller, deps=deps)


# The payout statuses a batch's file lists: on its way, or paid (a failed one moved nothing).
SENT = frozenset({"processing", "succeeded"})


def batch_lines(view: RunView) -> list[SettlementLine]:
    """The lines a run's batch pays: paid lines (returned ones too: the bank did pay them)
    whose payout exists and has not failed."""
    return [
        line
        for line in view.run.lines
        if line.status in (LineStatus.PAYOUT, LineStatus.PAYOUT_RETURNED)
        and line.payout_id
        and line.bank is not None
        and view.payout_statuses.get(line.payout_id) in SENT
    ]


async def batch_file(batch_id: str, *, caller: Caller, deps: Deps) -> bytes:
    """The batch as an ISO 20022 pain.001.001.09 credit-transfer initiation: one transfer
    per payout on its way or paid (:func:`batch_lines`)."""
    batch, view = await get_batch(batch_id, caller=caller, deps=deps)
    created = dt.datetime.fromtimestamp(batch["created_at_us"] / US, tz=dt.UTC)
    transfers = tuple(
        bankfiles.CreditTransfer(
            end_to_end_id=line.payout_id or "",
            amount=line.net,
            currency=view.run.currency,
            creditor=bankfiles.Party(line.bank.name, line.bank.iban, line.bank.bic),
            remittance=f"Settlement {view.run.id}",
        )
        for line in batch_lines(view)
        if line.bank is not None
    )
    if not transfers:
        raise InvalidState(f"payout batch {batch_id} has no payout to send: they all failed")
    debtor = bankfiles.Party(batch["debtor_name"], batch["debtor_iban"], batch["debtor_bic"])
    try:
        return bankfiles.pain001(
            bankfiles.PaymentFile(
                message_id=batch_id,
                created_at=created,
                execution_date=created.date(),
                debtor=debtor,
                transfers=transfers,
            )
        )
    except bankfiles.BankFileError as exc:
        raise InvalidState(f"payout batch {batch_id} cannot be a pain.001 file: {exc}") from None


# -- schedules -----------------------------------------------------------------------


def last_scheduled_us(s: SettlementSettings, now_us: int) -> int | None:
    """The latest moment of the tenant's daily schedule at or before `now_us` (None: none)."""
    if not s.schedule_time:
        return None
    zone = ZoneInfo(s.time_zone or "UTC")
    now = dt.datetime.fromtimestamp(now_us / US, tz=zone)
    at = dt.time.fromisoformat(s.schedule_time)
    today = dt.datetime.combine(now.date(), at, tzinfo=zone)
    when = today if today <= now else today - dt.timedelta(days=1)
    return int(when.timestamp() * US)


async def run_due_schedules(deps: Deps, now_us: int) -> int:
    """Make every scheduled run that is due (its cutoff the schedule's last moment); the
    number made. A run already made for that cutoff is answered, not made again."""
    made = 0
    for s in await _store(deps).scheduled_settings():
        cutoff = last_scheduled_us(s, now_us)
        if cutoff is None:
            continue
        caller = Caller(s.tenant_id, "settlement-schedule", frozenset({"settlement:write"}))
        for currency in s.schedule_currencies:
            try:
                await create_run(currency, cutoff, caller=caller, deps=deps, now_us=now_us)
                made += 1
            except CutoffBeforeLastRun:
                continue  # an operator ran one since the schedule's moment: nothing is due
            except PaymentsError as exc:
                log.warning(
                    "scheduled_settlement_refused",
                    tenant_id=s.tenant_id,
                    currency=currency,
                    code=exc.code,
                )
    return made


# -- reconciliation ------------------------------------------------------------------


def _date_us(d: dt.date) -> int:
    return int(dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC).timestamp() * US)


def _parse(content: bytes, fmt: str) -> bankfiles.BankStatement:
    if fmt not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}")
    try:
        statement = (
            bankfiles.read_statement_csv(content)
            if fmt == "csv"
            else bankfiles.read_camt053(content)
        )
    except bankfiles.BankFileError as exc:
        raise InvalidBankFile(str(exc)) from None
    # ISO 20022's own limits: Max35Text ids (140 tolerated, as ISO's Max140Text), an IBAN.
    if not 1 <= len(statement.statement_id) <= 140:
        raise InvalidBankFile("the statement's id must be 1 to 140 characters")
    if len(statement.account_iban) > 34:
        raise InvalidBankFile("the statement's account is not an IBAN (over 34 characters)")
    return statement


async def import_statement(
    content: bytes, fmt: str, *, caller: Caller, deps: Deps, tolerance: Tolerance | None = None
) -> StatementRow:
    """Read, match and record a bank statement; reverse the payouts it returns, once."""
    _may_write(caller)
    statement = _parse(content, fmt)
    store = _store(deps)
    tenant = caller.tenant_id
    own = (await store.get_settings(tenant)).debtor or DEMO_DEBTOR
    # The tenant's account now, or one its batches were paid from before a change.
    accounts = {own.iban, *await store.debtor_ibans(tenant)}
    if statement.account_iban.replace(" ", "").upper() not in accounts:
        raise StatementAccountMismatch(
            "the statement is of another bank account than the tenant's (settlement settings'"
            f" debtor, IBAN ending {own.iban[-4:]}, or one its payout batches were paid from)"
        )
    if await store.has_statement(tenant, statement.statement_id):
        raise DuplicateStatement(f"statement {statement.statement_id} was already imported")
    tolerance = tolerance or deps.reconciliation_tolerance
    for _ in range(5):
        try:
            row, counts, lines_n, breaks_n = await _match_and_record(
                statement, tolerance, caller=caller, deps=deps
            )
            break
        except StatementRaced:
            continue  # another import booked some of the same payouts: match again
    else:
        raise InvalidState("bank statements of this tenant keep racing: import it again")
    for result, n in counts.items():
        RECONCILIATION_LINES.labels(SERVICE, result).inc(n)
    log.info(
        "bank_statement_imported",
        statement_id=row.id,
        tenant_id=caller.tenant_id,
        entries=lines_n,
        breaks=breaks_n,
    )
    return row


async def _match_and_record(
    statement: bankfiles.BankStatement, tolerance: Tolerance, *, caller: Caller, deps: Deps
) -> tuple[StatementRow, Counter[str], int, int]:
    """Match `statement`'s lines, start the returns it makes, and record it with its lines and
    breaks (StatementRaced: another import booked the same payouts since they were read)."""
    store = _store(deps)
    tenant = caller.tenant_id
    now = deps.clock.now_us()
    row_id = f"bst_{secrets.token_hex(12)}"
    entries: list[dict[str, Any]] = []
    breaks: list[BreakRow] = []
    booked_now: set[str] = set()
    returns: dict[str, str] = {}
    counts: Counter[str] = Counter()
    sums: Counter[str] = Counter()

    def add_break(result: Result, amount: int, currency: str, **more: Any) -> None:
        breaks.append(
            {
                "id": f"rbk_{secrets.token_hex(12)}",
                "tenant_id": tenant,
                "statement_id": row_id,
                "type": result.value,
                "amount": amount,
                "currency": currency,
                "status": "open",
                "created_at_us": now + len(breaks),
                # Every row has every column (one executemany): what `more` does not say.
                "expected_amount": 0,
                "reference": "",
                "object_kind": "",
                "object_id": "",
                "credit": False,
                "return_reason": "",
                "booked_on": "",
                **more,
            }
        )

    lines = [
        Entry(
            amount=e.amount,
            currency=e.currency,
            credit=e.credit,
            booked_on_us=_date_us(e.booked_on),
            end_to_end_id=e.end_to_end_id,
            reference=e.reference,
            return_reason=e.return_reason,
        )
        for e in statement.entries
    ]
    keys = [lookup_key(entry) for entry in lines]
    known = {
        kind: await store.candidates(tenant, kind, [i for k, i in keys if k == kind])
        for kind in {k for k, _ in keys}
    }
    returned_now: set[str] = set()
    for seq, (e, entry, (kind, object_id)) in enumerate(
        zip(statement.entries, lines, keys, strict=True)
    ):
        found = known[kind].get(object_id) if object_id else None
        candidate = (
            None
            if found is None
            else Candidate(
                kind=kind,
                id=found["id"],
                amount=found["amount"],
                currency=found["currency"],
                status=found["status"],
                created_at_us=found["created_at_us"],
                already_matched=found["already_matched"] or found["id"] in booked_now,
                already_returned=found["already_returned"] or found["id"] in returned_now,
                written_off=found["written_off"],
            )
        )
        match = match_entry(entry, candidate, tolerance)
        if match.result in (Result.MATCHED, Result.AMOUNT_MISMATCH):
            booked_now.add(match.object_id)
        if match.result is Result.RETURNED:
            returns.setdefault(match.object_id, e.return_reason)
            returned_now.add(match.object_id)
        counts[match.result.value] += 1
        sums[match.result.value] += e.amount
        entries.append(
            {
                "statement_id": row_id,
                "seq": seq,
                "tenant_id": tenant,
                "amount": e.amount,
                "currency": e.currency,
                "credit": e.credit,
                "booked_on": e.booked_on.isoformat(),
                "end_to_end_id": e.end_to_end_id[:140],
                "reference": e.reference[:140],
                "return_reason": e.return_reason[:8],
                "result": match.result.value,
                "object_kind": match.object_kind,
                "object_id": match.object_id,
            }
        )
        if match.result is not Result.MATCHED:
            add_break(
                match.result,
                e.amount,
                e.currency,
                expected_amount=match.expected_amount,
                reference=(e.end_to_end_id or e.reference)[:140],
                object_kind=match.object_kind,
                object_id=match.object_id,
                credit=e.credit,
                return_reason=e.return_reason[:8],
                booked_on=e.booked_on.isoformat(),
            )

    dates = [e.booked_on for e in statement.entries]
    first = statement.from_date or (min(dates) if dates else None)
    last = statement.to_date or (max(dates) if dates else None)
    if first is not None and last is not None:
        unbooked = await store.unbooked_payouts(
            tenant, statement.currency, _date_us(first), _date_us(last) + DAY_US
        )
        for p in unbooked:
            if p["id"] in booked_now or p["id"] in returns:
                continue
            counts[Result.UNMATCHED_LEDGER.value] += 1
            sums[Result.UNMATCHED_LEDGER.value] += p["amount"]
            add_break(
                Result.UNMATCHED_LEDGER,
                p["amount"],
                p["currency"],
                expected_amount=p["amount"],
                reference=p["id"],
                object_kind="payout",
                object_id=p["id"],
            )

    # Returns first: a crash before the statement is recorded leaves it importable again,
    # and a return is made once per payout whatever happens.
    for payout_id, reason in returns.items():
        await _return_payout(payout_id, reason, caller=caller, deps=deps)
    row = StatementRow(
        id=row_id,
        tenant_id=tenant,
        statement_id=statement.statement_id,
        account_iban=statement.account_iban,
        currency=statement.currency,
        from_date=first.isoformat() if first else "",
        to_date=last.isoformat() if last else "",
        entry_count=len(statement.entries),
        counts=dict(counts),
        sums=dict(sums),
        created_at_us=now,
    )
    try:
        await store.add_statement(row, entries, breaks)
    except DuplicateStatementRow:
        raise DuplicateStatement(
            f"statement {statement.statement_id} was already imported"
        ) from None
    return row, counts, len(entries), len(breaks)


async def _return_payout(payout_id: str, reason: str, *, caller: Caller, deps: Deps) -> None:
    """Start (or find) the return of a succeeded payout: its money back to its account."""
    payout = await deps.store.get("payout", payout_id)
    if payout is None or payout.tenant_id != caller.tenant_id:
        return
    new = payout_return.new_return(payout, reason, deps.clock.now_us())
    await service.start(
        payout_return.KIND,
        new,
        lambda stored: bool(stored.tenant_id == caller.tenant_id),
        caller=caller,
        deps=deps,
    )


async def get_statement(statement_id: str, *, caller: Caller, deps: Deps) -> StatementRow:
    """The caller tenant's imported statement and its reconciliation report."""
    _may_read(caller)
    found = await _store(deps).get_statement(caller.tenant_id, statement_id)
    if found is None:
        raise NotFound(f"no bank statement {statement_id}")
    return found


async def list_statements(
    *, caller: Caller, deps: Deps, limit: int = 0, starting_after: str = ""
) -> tuple[list[StatementRow], bool]:
    """The caller tenant's statements, newest first; and whether more follow."""
    _may_read(caller)
    limit = service.page_limit(limit)
    cursor = None
    if starting_after:
        cursor = await _store(deps).get_statement(caller.tenant_id, starting_after)
        if cursor is None:
            raise InvalidRequest(f"starting_after: no bank statement {starting_after}")
    return await _store(deps).list_statements(caller.tenant_id, limit=limit, starting_after=cursor)


async def list_breaks(
    statement_id: str,
    status: str,
    *,
    caller: Caller,
    deps: Deps,
    limit: int = 0,
    starting_after: str = "",
) -> tuple[list[BreakRow], bool]:
    """The caller tenant's breaks, oldest first (one statement's, open or resolved ones)."""
    _may_read(caller)
    if status not in ("", "open", "resolved"):
        raise InvalidRequest("status must be open or resolved")
    limit = service.page_limit(limit)
    store = _store(deps)
    cursor = None
    if starting_after:
        cursor = await store.get_break(caller.tenant_id, starting_after)
        if cursor is None:
            raise InvalidRequest(f"starting_after: no break {starting_after}")
    return await store.list_breaks(
        caller.tenant_id,
        statement_id=statement_id,
        status=status,
        limit=limit,
        starting_after=cursor,
    )


async def resolve_break(
    break_id: str,
    action: str,
    object_id: str,
    note: str,
    resolved_by: str,
    *,
    caller: Caller,
    deps: Deps,
) -> BreakRow:
    """Resolve an open break: ``match_to`` an object, ``write_off`` the difference to the
    tenant's suspense account (an adjustment transfer), or ``ignore`` it."""
    _may_write(caller)
    validate_resolution(action, note, object_id)
    store = _store(deps)
    found = await store.get_break(caller.tenant_id, break_id)
    if found is None:
        raise NotFound(f"no reconciliation break {break_id}")
    if found["status"] != "open":
        if found["resolution"] == action == "write_off":
            await _post_write_off(found, caller=caller, deps=deps)  # finish what it began
            return found
        raise BreakResolved(f"break {break_id} is already resolved ({found['resolution']})")
    values: dict[str, Any] = {
        "resolution": action,
        "note": note,
        "resolved_by": resolved_by[:200],
        "resolved_at_us": deps.clock.now_us(),
    }
    if action == "match_to":
        kinds = ("payout", "topup", "topup_reversal")
        matches = [m for k in kinds if (m := await store.candidate(caller.tenant_id, k, object_id))]
        if not matches:
            raise NotFound(f"no payout, top-up or top-up reversal {object_id[:64]}")
        if all(m["currency"] != found["currency"] for m in matches):
            raise InvalidRequest(f"{object_id[:64]} is not in the break's currency")
        if found["type"] != "unmatched_ledger" and any(m["already_matched"] for m in matches):
            raise InvalidState(
                f"{object_id[:64]} is booked by a statement line already: write this one off"
            )
        values["resolved_object_id"] = object_id
    if action == "write_off":
        amount = write_off_direction(
            Result(found["type"]), found["credit"], found["amount"], found["expected_amount"]
        )
        values["transfer_id"] = f"{break_id}:write_off" if amount else ""
    if not await store.resolve_break(caller.tenant_id, break_id, values):
        raise BreakResolved(f"break {break_id} is already resolved")
    resolved = {**found, **values, "status": "resolved"}
    if action == "write_off":
        await _post_write_off(resolved, caller=caller, deps=deps)
    RECONCILIATION_BREAKS_RESOLVED.labels(SERVICE, found["type"], action).inc()
    log.info("reconciliation_break_resolved", break_id=break_id, action=action)
    return resolved


async def _post_write_off(b: BreakRow, *, caller: Caller, deps: Deps) -> None:
    """The write-off's adjustment transfer between funding and suspense (idempotent by id)."""
    amount = write_off_direction(Result(b["type"]), b["credit"], b["amount"], b["expected_amount"])
    if not amount:
        return
    currency = b["currency"]
    suspense = LedgerAccount(
        id=suspense_account_id(caller.tenant_id, currency), currency=currency, code="suspense"
    )
    for account in (funding(caller.tenant_id, currency), suspense):
        problem = await open_account(deps, caller, account)
        if problem:
            raise InvalidState(f"the write-off cannot open an account: {problem}")
    funding_id = domain.funding_account_id(caller.tenant_id, currency)
    debit, credit = (funding_id, suspense.id) if amount > 0 else (suspense.id, funding_id)
    transfer = Transfer(
        id=f"{b['id']}:write_off",
        debit_account_id=debit,
        credit_account_id=credit,
        amount=abs(amount),
        currency=currency,
        code="write_off",
        reference=b["id"],
    )
    [result] = await ledger_results(deps, caller, [transfer])
    if result not in ("ok", "exists"):
        raise InvalidState(f"the ledger refused the write-off: {result}")
