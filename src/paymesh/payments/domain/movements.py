"""One state machine for every flow that moves money, its path declared as data.

A :class:`Movement` runs its ``path`` of steps in order (ledger steps and
the bank's), then succeeds; a refusal fails it with a stable code. Three
rules complete it:

- compensation: the bank's failure after a hold voids the hold (step
  ``void``) and the object fails with the bank's code once the void is done
  (the hold is gone either way); the bank's failure before any hold fails it
  at once;
- a lost answer is never guessed: the object waits at ``bank_status`` and
  asks the bank until it knows;
- the deadline: a step still failing past it becomes what ``given_up``
  says, ``void`` (a hold that may exist is released and the object fails
  with ``timeout``) or ``lookup`` (a single-phase transfer is never sent
  again: the ledger is asked whether it happened; found, the step is done,
  else it fails with ``timeout``). Other steps are never given up.

Each ledger step's transfer is declared by a :class:`Leg`; its id is derived
from the object id, so a re-run step is recognised by the ledger
(``exists``) and money moves once. Refunds, P2P transfers, top-ups, payouts
and top-up reversals are each one ``Movement``; payments (risk, capture,
fees) have their own machine in :mod:`.payments`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

from paymesh.payments.domain.common import (
    TIMEOUT,
    BankOutcome,
    BankResult,
    SagaObject,
    Step,
    Transfer,
    TransferKind,
    advance,
    failure_code,
)

__all__ = ["Leg", "Movement", "MovementStatus", "hold_legs"]


class MovementStatus(StrEnum):
    """Where a money movement is: on its way, or ended one way or the other."""

    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


M = TypeVar("M", bound=SagaObject)
Transition = tuple[M, tuple[str, ...]]

# The kind of a ledger step's transfer: a hold, its post or its void; else single-phase.
_KINDS = {
    Step.HOLD: TransferKind.PENDING,
    Step.POST: TransferKind.POST_PENDING,
    Step.VOID: TransferKind.VOID_PENDING,
}


class Leg(NamedTuple):
    """The ledger transfer of one step: its id (``{id}`` is the object's id) and its code."""

    id: str
    code: str


def hold_legs(prefix: str, code: str, *, void_code: str = "") -> dict[Step, Leg]:
    """The legs of a hold, its post and its void: ids `prefix` + hold, post, void."""
    return {
        Step.HOLD: Leg(f"{prefix}hold", code),
        Step.POST: Leg(f"{prefix}post", code),
        Step.VOID: Leg(f"{prefix}void", void_code or code),
    }


def _own_id(obj: SagaObject) -> str:
    return obj.id


@dataclass(frozen=True)
class Movement(Generic[M]):
    """A flow's state machine: its steps, its transfers and its events, as data."""

    # The object's name in messages ("payout", "top-up").
    name: str
    # The steps in order; after the last, the object succeeded.
    path: tuple[Step, ...]
    # The transfer of each ledger step (a void's too).
    legs: Mapping[Step, Leg]
    # The accounts every transfer debits and credits.
    accounts: Callable[[M], tuple[str, str]]
    # The event types of success and of failure.
    succeeded: str
    failed: str
    # What a step still failing past its deadline becomes (a step not named: never given up).
    given_up: Mapping[Step, Step] = field(default_factory=dict)
    # What the transfers name as their reference.
    reference: Callable[[M], str] = _own_id
    # What the bank knows the request by (``{id}``: the object's id).
    bank_ref: str = "{id}"

    def ledger_ids(self, object_id: str) -> tuple[str, ...]:
        """Every ledger transfer id the movement may make for `object_id`."""
        return tuple(leg.id.format(id=object_id) for leg in self.legs.values())

    def bank_reference(self, obj: M) -> str:
        """The reference of the object's request to the bank."""
        return self.bank_ref.format(id=obj.id)

    def transfer(self, obj: M) -> Transfer:
        """The transfer of the object's ledger step (a lookup: the one it asks about; a
        movement with one transfer: that one, whatever the step)."""
        step = self._ledger_step(obj.step)
        if step is None or step not in self.legs:
            raise ValueError(f"step {obj.step} of {self.name} {obj.id} moves no money")
        leg = self.legs[step]
        kind = _KINDS.get(step, TransferKind.SINGLE)
        two_phase = kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING)
        debit, credit = self.accounts(obj)
        return Transfer(
            id=leg.id.format(id=obj.id),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=obj.amount,
            currency=obj.currency,
            code=leg.code,
            reference=self.reference(obj),
            kind=kind,
            pending_id=self.legs[Step.HOLD].id.format(id=obj.id) if two_phase else "",
        )

    def apply_ledger(self, obj: M, result: str, now_us: int) -> Transition[M]:
        """The ledger's answer to the step's transfer (ok/exists: done); a void ends the
        object failed with why the hold was voided."""
        if obj.step is Step.VOID:
            return self.fail(obj, obj.failure_code or failure_code(result), now_us)
        step = self._ledger_step(obj.step)
        if step is None or step not in self.legs:
            raise ValueError(f"{self.name} {obj.id} is at step {obj.step}, not a ledger step")
        if result not in ("ok", "exists"):
            return self.fail(obj, failure_code(result), now_us)
        return self._after(obj, step, now_us)

    def apply_bank(self, obj: M, answer: BankResult, now_us: int) -> Transition[M]:
        """The bank's answer: the next step; on a failure the hold's void (or the failure,
        when nothing is held); unknown: ask again later."""
        if obj.step not in (Step.BANK, Step.BANK_STATUS):
            raise ValueError(
                f"{self.name} {obj.id} is at step {obj.step}, not waiting for the bank"
            )
        if answer.outcome is BankOutcome.SUCCEEDED:
            return self._after(obj, Step.BANK, now_us)
        if answer.outcome is BankOutcome.FAILED:
            code = answer.code or "bank_failed"
            if Step.HOLD in self.path[: self.path.index(Step.BANK)]:
                return advance(obj, now_us, step=Step.VOID, failure_code=code), ()
            return self.fail(obj, code, now_us)
        return advance(obj, now_us, step=Step.BANK_STATUS), ()

    def give_up(self, obj: M, now_us: int) -> Transition[M] | None:
        """The step's deadline passed and it still fails transiently: what it becomes, if
        it is ever given up (a hold: its void, failing with ``timeout``)."""
        then = self.given_up.get(obj.step) if obj.step is not None else None
        if then is None:
            return None
        code = TIMEOUT if then is Step.VOID else obj.failure_code
        return advance(obj, now_us, step=then, failure_code=code), ()

    def fail(self, obj: M, code: str, now_us: int) -> Transition[M]:
        """The object fails for good with a stable code."""
        failed = advance(obj, now_us, step=None, status=MovementStatus.FAILED, failure_code=code)
        return failed, (self.failed,)

    def _after(self, obj: M, done: Step, now_us: int) -> Transition[M]:
        """The object once step `done` is done: the next step of the path, or success."""
        i = self.path.index(done) + 1
        if i < len(self.path):
            return advance(obj, now_us, step=self.path[i]), ()
        succeeded = advance(obj, now_us, step=None, status=MovementStatus.SUCCEEDED)
        return succeeded, (self.succeeded,)

    def _ledger_step(self, step: Step | None) -> Step | None:
        """The ledger step `step` stands for: any step of a movement with one transfer, that
        transfer's; a lookup, the step it asks about; else `step` itself."""
        if len(self.legs) == 1:
            return next(iter(self.legs))
        if step is Step.LOOKUP:
            return next((s for s, then in self.given_up.items() if then is step), step)
        return step
