"""The saga: running flows' steps inline after a command, and later by the :class:`Resumer`.

One package: the runner (:mod:`.runner`: one loop for every flow, reading
the flow's record from :mod:`paymesh.payments.flows`), the Resumer
(:mod:`.resumer`), leases and claims (:mod:`.leases`), and retries, backoff
and the deadline (:mod:`.retries`); :mod:`paymesh.payments.ports` holds what they all
need (``Deps``).

A step is recorded on its row before the remote call (by the command that
started it, or by the transition that made it next) and its result is
applied after the call by a conditional transition, together with its
events. Every remote call is idempotent (deterministic ledger transfer ids;
risk decides once per payment; the bank knows each request by the top-up or
payout id), so re-running a recorded step is always safe: ``exists`` counts
as success. A bank answer that did not come (``unknown``) is never guessed:
the object waits at ``bank_status`` and the Resumer asks the bank, with
backoff, until it knows.

A business refusal fails the object at once. A transient failure is retried
inline a few times with backoff; if it persists the step stays recorded,
the row gets a ``next_attempt_at_us`` with exponential backoff, and the
Resumer runs it again when it is due. A step just recorded is leased to its
runner for ``lease_s`` so the Resumer does not run it beside it.

The deadline. Each row keeps when its step was first recorded
(``step_started_at_us``); a step still failing transiently
``RetryPolicy.step_deadline_s`` after that is given up, safely: an outcome
is never guessed, money never moves twice and is never left held.

- payment ``risk``: nothing moved; the payment fails with ``timeout``.
- payment ``hold`` (and payout ``hold``): the hold may exist, so its void
  comes next (the compensation) and the object fails with ``timeout`` once
  the void is done; a void answering ``pending_transfer_not_found`` then
  counts as done (the hold was never made).
- payment ``capture``: the post may have happened, so the payment asks the
  ledger (step ``lookup``: LookupTransfers of ``:capture`` and ``:fee``, one
  linked batch): posted, it succeeded; not, its hold is voided and it fails
  with ``timeout`` (a manual capture too: the authorisation is released, the
  merchant makes a new payment; holding money for a capture that may never
  come is worse). A void that finds the hold posted goes back to the lookup.
- refunds and P2P transfers (one single-phase transfer): step ``lookup``;
  found, it succeeded; not found, it failed with ``timeout`` (a failed refund
  no longer counts against the refundable amount).
- Never given up: voids (compensation must finish), lookups (they move
  nothing), the payout's post (the bank may have paid), the top-up's credit
  (the bank took the money: it must arrive), and waits for the bank (which
  resolve unknown outcomes their own way). These keep their backoff, capped
  at ``resume_max_s``.

Why a lookup is trusted only later. A request whose answer timed out on the
client may still be executing on the ledger and commit after the client gave
up, so a lookup made at once could answer "not found" for a transfer that
then appears, and the object would fail with the money moved. So, once a
step is given up, its transfer is never sent again (the row's step changed
by a conditional update; any runner reads the new step), and its first
lookup or void (``lookup``, or a void of a given-up hold) waits until
``RetryPolicy.settle_s`` after the give-up. ``settle_s`` exceeds what one
inline run of a step can last (every attempt bounded by the gRPC deadline,
plus the waits between them), so any attempt already in flight, including
one a concurrent runner sent from a row it read before the change, has
ended by then, and whatever it did is visible to the lookup. The guard is on
the row (``step_started_at_us + settle_s``), so the Resumer's first pass
after a restart, which ignores ``next_attempt_at_us``, respects it too.
"""

from __future__ import annotations

from paymesh.payments.ports import DEFAULT_AUTHORIZATION_TTL_S, Deps, RetryPolicy
from paymesh.payments.saga.leases import Lease, claim, leased
from paymesh.payments.saga.resumer import Resumer
from paymesh.payments.saga.retries import with_retries
from paymesh.payments.saga.runner import (
    RESUMER_CLIENT_ID,
    expire_authorizations,
    run,
    run_payment,
)

__all__ = [
    "DEFAULT_AUTHORIZATION_TTL_S",
    "RESUMER_CLIENT_ID",
    "Deps",
    "Lease",
    "Resumer",
    "RetryPolicy",
    "claim",
    "expire_authorizations",
    "leased",
    "run",
    "run_payment",
    "with_retries",
]
