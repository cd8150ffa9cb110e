"""Leases: which runner may run a saga object's recorded step now.

A step just recorded is leased to its runner for ``RetryPolicy.lease_s``
(``next_attempt_at_us``, with the runner's owner id in ``lease_owner``), so
the Resumer does not run it beside it; see :meth:`SqlPaymentsStore.claim
<paymesh.payments.store.SqlPaymentsStore.claim>` for when a lease is free.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypeVar

from paymesh.payments.domain import Step
from paymesh.payments.ports import Deps

__all__ = ["Lease", "claim", "leased"]

S = TypeVar("S")

# How a runner comes to a saga object's step: it recorded the step itself and holds
# its lease ("held"); it must claim the lease first, and leave the step to the live
# runner holding it ("claim"); or it takes the lease whatever it says ("take": the
# embedded shape's first pass after a restart, when no other runner can exist).
Lease = Literal["held", "claim", "take"]


def leased(obj: S, deps: Deps, *, after: Step | None = None) -> S:
    """`obj` with its recorded step left to the current runner for a while.

    A step other than `after` (the step the object was at) is new: its deadline
    starts now.
    """
    o: Any = obj  # any flow's object: a frozen dataclass with the saga columns
    if o.step is None:
        return obj
    now = deps.clock.now_us()
    started = o.step_started_at_us if o.step is after else now
    until = now + int(deps.retry.lease_s * 1_000_000)
    changed: S = dataclasses.replace(o, next_attempt_at_us=until, step_started_at_us=started)
    return changed


async def claim(kind: str, obj: Any, deps: Deps, lease: Lease) -> bool:
    """Whether this runner may run `obj`'s step now (claiming its lease if need be)."""
    if lease == "held":
        return True
    now = deps.clock.now_us()
    until = now + int(deps.retry.lease_s * 1_000_000)
    return await deps.store.claim(
        kind, obj.id, obj.step, now_us=now, until_us=until, take=lease == "take"
    )
