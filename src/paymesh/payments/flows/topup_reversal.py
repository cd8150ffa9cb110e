"""The top-up reversal flow: a succeeded top-up's money back to the funding source.

``hold`` (pending account → funding, ``{topup_id}:reversal_hold``) → ``bank``
(push, idempotent by the reference ``{topup_id}:reversal``) → ``post``
(``{topup_id}:reversal_post``) → ``succeeded``. An account that no longer
has the money refuses the hold: the reversal fails with
``insufficient_funds`` and nothing moves. The bank's failure voids the hold
(``{topup_id}:reversal_void``) and fails the reversal with the bank's code;
a lost answer is never guessed (``bank_status``). A hold still failing past
its deadline is voided and the reversal fails with ``timeout``; once the
bank may have paid, nothing is given up.

A top-up is reversed at most once: the reversal's id is the top-up's, so
asking again answers the same reversal, whatever became of it. Only a
succeeded top-up of the caller's tenant may be reversed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa

from paymesh.contracts.events import TOPUP_REVERSAL_FAILED, TOPUP_REVERSAL_SUCCEEDED, Event
from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments import domain
from paymesh.payments.domain import TIMEOUT, BankOutcome, BankResult, Step, Topup, Transfer
from paymesh.payments.domain import TransferKind as Kind
from paymesh.payments.errors import InvalidState, NotFound
from paymesh.payments.events import object_events
from paymesh.payments.flows.base import (
    CreateRpc,
    Flow,
    Outcome,
    funding,
    ledger_results,
    open_account,
)
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["FLOW", "TopupReversal", "TopupReversalStatus", "topup_reversals"]

KIND = "topup_reversal"


class TopupReversalStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class TopupReversal:
    id: str  # the top-up's
    tenant_id: str
    account_id: str
    amount: int
    currency: str
    status: TopupReversalStatus
    created_at_us: int
    updated_at_us: int
    failure_code: str = ""
    step: Step | None = None
    attempts: int = 0
    next_attempt_at_us: int = 0
    step_started_at_us: int = 0


topup_reversals = saga_table(
    "topup_reversals",
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    listed=False,
)

# -- the state machine (pure) ------------------------------------------------------

Transition = tuple[TopupReversal, tuple[str, ...]]


def new_reversal(t: Topup, now_us: int) -> TopupReversal:
    """The reversal of succeeded top-up `t`, ``processing``, with the hold to make first."""
    if t.status is not domain.TopupStatus.SUCCEEDED:
        raise InvalidState(f"top-up {t.id} is {t.status.value}: only a succeeded one is reversed")
    return TopupReversal(
        id=t.id,
        tenant_id=t.tenant_id,
        account_id=t.account_id,
        amount=t.amount,
        currency=t.currency,
        status=TopupReversalStatus.PROCESSING,
        created_at_us=now_us,
        updated_at_us=now_us,
        step=Step.HOLD,
    )


def ledger_transfer(r: TopupReversal) -> Transfer:
    """The ledger transfer of the reversal's current ledger step: hold, post or void."""
    hold = Transfer(
        id=f"{r.id}:reversal_hold",
        debit_account_id=r.account_id,
        credit_account_id=domain.funding_account_id(r.tenant_id, r.currency),
        amount=r.amount,
        currency=r.currency,
        code=KIND,
        reference=r.id,
        kind=Kind.PENDING,
    )
    then = {Step.POST: Kind.POST_PENDING, Step.VOID: Kind.VOID_PENDING}
    if r.step is Step.HOLD:
        return hold
    if r.step in then:
        name = f"{r.id}:reversal_{r.step.value}"
        return dataclasses.replace(hold, id=name, kind=then[r.step], pending_id=hold.id)
    raise ValueError(f"step {r.step} of top-up reversal {r.id} moves no money")


def apply_ledger(r: TopupReversal, result: str, now_us: int) -> Transition:
    """The ledger's answer to the hold (bank next), the post (succeeded) or the void."""
    if r.step is Step.VOID:  # the hold is gone either way; fail with why it was voided
        return _fail(r, r.failure_code or domain.failure_code(result), now_us)
    if result not in ("ok", "exists"):
        return _fail(r, domain.failure_code(result), now_us)
    if r.step is Step.HOLD:
        return _next(r, Step.BANK, now_us), ()
    succeeded = dataclasses.replace(_next(r, None, now_us), status=TopupReversalStatus.SUCCEEDED)
    return succeeded, (TOPUP_REVERSAL_SUCCEEDED,)


def apply_bank(r: TopupReversal, answer: BankResult, now_us: int) -> Transition:
    """The bank's answer about the push: post, void (compensate), or ask again later."""
    if answer.outcome is BankOutcome.SUCCEEDED:
        return _next(r, Step.POST, now_us), ()
    if answer.outcome is BankOutcome.FAILED:
        voiding = _next(r, Step.VOID, now_us)
        return dataclasses.replace(voiding, failure_code=answer.code or "bank_failed"), ()
    return _next(r, Step.BANK_STATUS, now_us), ()


def give_up(r: TopupReversal, now_us: int) -> Outcome:
    """Only the hold is given up (it is voided, the reversal fails with ``timeout``)."""
    if r.step is not Step.HOLD:
        return None
    return dataclasses.replace(_next(r, Step.VOID, now_us), failure_code=TIMEOUT), ()


def _next(r: TopupReversal, step: Step | None, now_us: int) -> TopupReversal:
    return dataclasses.replace(r, step=step, updated_at_us=now_us, attempts=0, next_attempt_at_us=0)


def _fail(r: TopupReversal, code: str, now_us: int) -> Transition:
    failed = dataclasses.replace(
        _next(r, None, now_us), status=TopupReversalStatus.FAILED, failure_code=code
    )
    return failed, (TOPUP_REVERSAL_FAILED,)


# -- the step, the events, the RPC -----------------------------------------------------


async def _step(r: TopupReversal, caller: Caller, deps: Deps) -> Outcome:
    """Hold, post or void on the ledger; or ask the bank to send the money (or what became
    of the request)."""
    now = deps.clock.now_us
    ref = f"{r.id}:reversal"
    if r.step is Step.BANK:
        return apply_bank(r, await deps.bank.push(ref, r.account_id, r.amount, r.currency), now())
    if r.step is Step.BANK_STATUS:
        answer = await deps.bank.status(ref)
        return None if answer.outcome is BankOutcome.UNKNOWN else apply_bank(r, answer, now())
    if r.step is Step.HOLD:
        problem = await open_account(deps, caller, funding(r.tenant_id, r.currency))
        if problem:
            return apply_ledger(r, problem, now())
    [result] = await ledger_results(deps, caller, [ledger_transfer(r)])
    return apply_ledger(r, result, now())


def _events(r: TopupReversal, types: Iterable[str], now_us: int) -> list[Event]:
    return object_events(r.id, r.tenant_id, reversal_pb(r), types, now_us)


async def _begin(request: pb.ReverseTopupRequest, caller: Caller, deps: Deps) -> TopupReversal:
    """The reversal of the caller's top-up (not found: another tenant's, or none)."""
    topup: Topup | None = await deps.store.get("topup", request.topup_id)
    if topup is None or topup.tenant_id != caller.tenant_id:
        raise NotFound(f"no top-up {request.topup_id}")
    stored: TopupReversal | None = await deps.store.get(KIND, topup.id)
    return stored or new_reversal(topup, deps.clock.now_us())


def reversal_pb(r: TopupReversal) -> pb.TopupReversal:
    """The protobuf form of a top-up reversal."""
    return pb.TopupReversal(
        id=r.id,
        tenant_id=r.tenant_id,
        topup_id=r.id,
        account_id=r.account_id,
        amount=r.amount,
        currency=r.currency,
        status=r.status.value,
        failure_code=r.failure_code,
        created_at_us=r.created_at_us,
    )


FLOW = Flow(
    kind=KIND,
    cls=TopupReversal,
    status=TopupReversalStatus,
    table=topup_reversals,
    step=_step,
    events=_events,
    ledger_ids=lambda topup_id: tuple(f"{topup_id}:reversal_{s}" for s in ("hold", "post", "void")),
    give_up=give_up,
    rpcs=(
        CreateRpc(
            name="ReverseTopup",
            begin=_begin,
            same=lambda new, stored: bool(new.tenant_id == stored.tenant_id),
            to_pb=reversal_pb,
        ),
    ),
)
