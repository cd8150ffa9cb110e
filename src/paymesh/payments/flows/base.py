"""What a payment flow is: the :class:`Flow` record, and what flows' steps share.

A flow is one kind of saga object (a payment, a refund, a top-up, ...). Its
record says everything the saga and the store need to know about it: its
domain class and status enum, its table and row mapping, the step function
the runner calls, what a step past its deadline becomes, the events a
transition emits, the ledger transfer ids it makes, and its final statuses.
The saga (:mod:`paymesh.payments.saga`) and the store read these records;
nothing else is keyed by a flow's kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from paymesh.contracts.events import Event
from paymesh.payments import domain
from paymesh.payments.domain import (
    TIMEOUT,
    AccountMovement,
    BankOutcome,
    BankResult,
    Movement,
    MovementStatus,
    SagaObject,
    Step,
    Transfer,
    TransferKind,
)
from paymesh.payments.errors import RemoteRefusal
from paymesh.payments.ports import LedgerAccount
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = [
    "FINAL",
    "CreateRpc",
    "Flow",
    "Outcome",
    "account_problem",
    "ask_bank",
    "flat_object",
    "flat_row",
    "funding",
    "funding_transfer_result",
    "hold_push_post",
    "ledger_results",
    "move_or_look_up",
    "movement_flow",
    "never_given_up",
    "open_account",
]

# What a step answers: the new object and the event types of its transition, or None
# when it cannot know yet (the runner asks again later, with backoff).
Outcome = tuple[Any, tuple[str, ...]] | None
StepFn = Callable[[Any, Caller, "Deps"], Awaitable[Outcome]]
GiveUpFn = Callable[[Any, int], Outcome]
EventsFn = Callable[[Any, Iterable[str], int], list[Event]]

# The statuses a saga object never leaves, for most flows.
FINAL = frozenset({"succeeded", "failed"})


def never_given_up(_obj: Any, _now_us: int) -> Outcome:
    """A flow none of whose steps is ever given up (they keep their backoff)."""
    return None


@dataclass(frozen=True)
class CreateRpc:
    """A gRPC method of the Payments service that creates a flow's object, served from
    the flow's own module (:func:`paymesh.payments.api.servicer` binds it by `name`).

    `begin` makes the new object from the request (raising a
    :class:`~paymesh.payments.errors.PaymentsError` to refuse);
    :func:`paymesh.payments.service.start` inserts it and runs its saga, or
    answers the one stored under its id when ``same(new, stored)`` says the
    request is that one's retry (else ``id_reused``). `to_pb` is the answer.
    """

    name: str
    begin: Callable[[Any, Caller, Deps], Awaitable[Any]]
    same: Callable[[Any, Any], bool]
    to_pb: Callable[[Any], Any]


@dataclass(frozen=True)
class Flow:
    """One payment flow, as the saga and the store see it."""

    # The flow's name: the key of the registry, the saga's `kind`, the metrics' label.
    kind: str
    cls: type[Any]
    status: type[StrEnum]
    table: sa.Table
    # Run the object's recorded step once (the runner retries and records the outcome).
    step: StepFn
    events: EventsFn
    # Every ledger transfer id the flow may make for an object id.
    ledger_ids: Callable[[str], tuple[str, ...]]
    # What a step still failing past its deadline becomes (None: never given up).
    give_up: GiveUpFn = never_given_up
    final: frozenset[str] = FINAL
    to_row: Callable[[Any], dict[str, Any]] | None = None
    from_row: Callable[[sa.Row[Any]], Any] | None = None
    # Columns a transition never rewrites, besides id, tenant_id and created_at_us.
    fixed: tuple[str, ...] = ()
    # A statement written in the same transaction as a transition to `obj` (or None).
    also: Callable[[Any], sa.Executable | None] | None = None
    # The column whose amount a success counts (paymesh_payments_amount_total).
    counted: str = "amount"
    rpcs: tuple[CreateRpc, ...] = field(default=())

    def row(self, obj: Any) -> dict[str, Any]:
        """The row of `obj`."""
        return self.to_row(obj) if self.to_row is not None else flat_row(obj)

    def load(self, r: sa.Row[Any]) -> Any:
        """The object in row `r`."""
        return self.from_row(r) if self.from_row is not None else flat_object(self, r)


def flat_row(obj: Any) -> dict[str, Any]:
    """The row of a flat saga object (scalars, its status and its step)."""
    row = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    row["status"] = obj.status.value
    row["step"] = None if obj.step is None else obj.step.value
    return row


def flat_object(flow: Flow, r: sa.Row[Any]) -> Any:
    """The flat saga object of `flow` in row `r`."""
    values = {f.name: getattr(r, f.name) for f in dataclasses.fields(flow.cls)}
    values["status"] = flow.status(r.status)
    values["step"] = None if r.step is None else Step(r.step)
    return flow.cls(**values)


# -- what steps share ------------------------------------------------------------


async def ledger_results(deps: Deps, caller: Caller, transfers: list[Transfer]) -> list[str]:
    """The ledger's results; a refusal of the whole call is every transfer's result."""
    try:
        return await deps.ledger.create_transfers(caller, transfers)
    except RemoteRefusal as refusal:
        return [refusal.code] * len(transfers)


async def open_account(deps: Deps, caller: Caller, account: LedgerAccount) -> str:
    """Open one of the tenant's own accounts if needed; "" when it is there."""
    try:
        [opened] = await deps.ledger.create_accounts(caller, [account])
    except RemoteRefusal as refusal:
        opened = refusal.code
    return "" if opened in ("ok", "exists") else f"{account.code}_account_{opened}"


def funding(tenant_id: str, currency: str) -> LedgerAccount:
    """The tenant's funding account (money outside the platform), to open on demand."""
    return LedgerAccount(
        id=domain.funding_account_id(tenant_id, currency), currency=currency, code="funding"
    )


async def account_problem(deps: Deps, caller: Caller, account_id: str, currency: str) -> str:
    """Why money cannot go to `account_id` ("" when it can): checked before the bank moves it."""
    found = await deps.ledger.lookup_accounts(caller, [account_id])
    if not found:
        return "account_not_found"
    if found[0].currency != currency:
        return "currency_mismatch"
    return ""


# -- the steps of a money movement (:class:`~paymesh.payments.domain.Movement`) ------

M = TypeVar("M", bound=SagaObject)
A = TypeVar("A", bound=AccountMovement)
BankRequest = Callable[[str, str, int, str], Awaitable[BankResult]]


async def move_or_look_up(movement: Movement[M], obj: M, caller: Caller, deps: Deps) -> Outcome:
    """Make the object's single-phase transfer (or, past its deadline, ask whether it moved)."""
    transfer = movement.transfer(obj)
    if obj.step is Step.LOOKUP:
        found = await deps.ledger.lookup_transfers(caller, [transfer.id])
        result = "exists" if found else TIMEOUT
    else:
        [result] = await ledger_results(deps, caller, [transfer])
    return movement.apply_ledger(obj, result, deps.clock.now_us())


async def ask_bank(movement: Movement[A], obj: A, deps: Deps, request: BankRequest) -> Outcome:
    """Send the object's request to the bank (step ``bank``), or ask what became of it
    (``bank_status``: None while the bank does not know)."""
    ref = movement.bank_reference(obj)
    if obj.step is Step.BANK:
        answer = await request(ref, obj.account_id, obj.amount, obj.currency)
    else:
        answer = await deps.bank.status(ref)
        if answer.outcome is BankOutcome.UNKNOWN:
            return None
    return movement.apply_bank(obj, answer, deps.clock.now_us())


async def funding_transfer_result(movement: Movement[A], obj: A, caller: Caller, deps: Deps) -> str:
    """The ledger's result for the object's transfer to or from the tenant's funding account,
    opened on demand by the first transfer (a hold or a credit; its post or void finds it)."""
    transfer = movement.transfer(obj)
    if transfer.kind in (TransferKind.SINGLE, TransferKind.PENDING):
        problem = await open_account(deps, caller, funding(obj.tenant_id, obj.currency))
        if problem:
            return problem
    [result] = await ledger_results(deps, caller, [transfer])
    return result


async def hold_push_post(movement: Movement[A], obj: A, caller: Caller, deps: Deps) -> Outcome:
    """Hold the money, have the bank send it (or ask what became of it), then post or void
    the hold: the step of money out of an account."""
    if obj.step in (Step.BANK, Step.BANK_STATUS):
        return await ask_bank(movement, obj, deps, deps.bank.push)
    result = await funding_transfer_result(movement, obj, caller, deps)
    return movement.apply_ledger(obj, result, deps.clock.now_us())


def movement_flow(
    kind: str,
    cls: type[Any],
    table: sa.Table,
    movement: Movement[Any],
    *,
    step: StepFn,
    events: EventsFn,
    **more: Any,
) -> Flow:
    """The record of flow `kind`, whose state machine is `movement`: its statuses, its
    ledger ids and what a step past its deadline becomes come from it; `more` are the
    record's other fields."""
    return Flow(
        kind=kind,
        cls=cls,
        status=MovementStatus,
        table=table,
        step=step,
        events=events,
        ledger_ids=movement.ledger_ids,
        give_up=movement.give_up,
        **more,
    )


def by_kind(flows: Iterable[Flow]) -> Mapping[str, Flow]:
    """The registry of `flows`, by kind (refusing a kind or a table used twice)."""
    found: dict[str, Flow] = {}
    for flow in flows:
        if flow.kind in found or any(f.table is flow.table for f in found.values()):
            raise ValueError(f"flow {flow.kind} is registered twice or shares a table")
        found[flow.kind] = flow
    return found
