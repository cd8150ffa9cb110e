"""The events payments consumes: risk's review resolutions, by which a payment in review
continues or is released.

Risk publishes ``review.approved`` / ``review.declined`` on
:data:`~paymesh.contracts.events.TOPIC_RISK` (subject: the payment id) when an
operator resolves a review, or when the review's timeout applies its
default. Payments consumes them in the consumer group :data:`GROUP`:

- the event id is recorded in the payments inbox (consumer :data:`CONSUMER`)
  in the same transaction as the payment's transition and its events, so a
  redelivered event moves nothing twice;
- an approval continues the saga as after a hold (the capture step, or
  ``requires_capture``); a decline voids the hold and fails the payment with
  ``risk_declined`` (see :func:`paymesh.payments.domain.resolve_review`);
- an event for a payment no longer in review (canceled, expired, resolved)
  or of another tenant is recorded and changes nothing (logged);
- the step the transition recorded runs at once; if this process dies
  first, the Resumer runs it (the step is on the row);
- a resolution that comes while the payment is still placing its hold
  (:func:`~paymesh.payments.domain.before_review`) waits here, polling with
  backoff, until the hold step ends: dropping it would leave the payment in
  review with nobody left to resolve it. The wait is bounded by the hold
  step's deadline, and holds back only the events behind it on its partition.

Every other event type on the topic (``risk.decision_made``, or a type added
later) is ignored without a trace. The payload is the contract's typed message
(``risk.v1.ReviewResolved``, see :mod:`paymesh.contracts.events`): payments
imports nothing of risk, and fields it does not know are ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from paymesh.contracts.events import (
    REVIEW_APPROVED,
    REVIEW_DECLINED,
    TOPIC_RISK,
    Event,
    MalformedPayload,
    payload_of,
)
from paymesh.contracts.risk.v1.risk_pb2 import ReviewResolved as ReviewResolvedData
from paymesh.payments import domain
from paymesh.payments.domain import Payment, Resolution, ReviewResolved
from paymesh.payments.messages import payment_events
from paymesh.payments.saga import RESUMER_CLIENT_ID, Deps, leased, run_payment
from paymesh.platform.bus import Handler
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger

__all__ = [
    "CONSUMER",
    "GROUP",
    "TOPIC",
    "apply_review_event",
    "review_events_handler",
    "review_resolved",
]

log = get_logger(__name__)

TOPIC = TOPIC_RISK
# The consumer group on the bus, and the consumer's name in the inbox.
GROUP = "payments"
CONSUMER = "payments.reviews"

# How long to wait between looks at a payment still placing its hold, in seconds.
_EARLY_WAIT_S = 0.05
_EARLY_WAIT_MAX_S = 2.0

_RESOLUTIONS = {REVIEW_APPROVED: Resolution.APPROVE, REVIEW_DECLINED: Resolution.DECLINE}


def review_resolved(event: Event) -> ReviewResolved | None:
    """The resolution `event` announces; None for another type, or a malformed one.

    A malformed resolution is logged and skipped rather than raised: raising
    would have the bus deliver it again forever, stalling its partition.
    """
    resolution = _RESOLUTIONS.get(event.type)
    if resolution is None:
        return None
    try:
        data = payload_of(event, ReviewResolvedData)
    except MalformedPayload as exc:
        log.warning("review_event_malformed", event_id=event.id, error=str(exc))
        return None
    if data is None:
        return None
    payment_id = data.payment_id or event.subject
    tenant_id = data.tenant_id or event.tenant
    stated = data.resolution or resolution.value
    if not payment_id:
        log.warning("review_event_malformed", event_id=event.id, error="no payment or tenant")
        return None
    if stated != resolution.value or (event.tenant and tenant_id != event.tenant):
        log.warning("review_event_malformed", event_id=event.id, error="inconsistent fields")
        return None
    return ReviewResolved(
        payment_id=payment_id,
        tenant_id=tenant_id,
        resolution=resolution,
        resolved_by=data.resolved_by,
        note=data.note,
    )


async def _until_reviewable(payment_id: str, deps: Deps) -> None:
    """Wait while the payment is still on its way to review (see the module docstring)."""
    wait_s = _EARLY_WAIT_S
    while True:
        p = await deps.store.get_payment(payment_id)
        if p is None or not domain.before_review(p):
            return
        if wait_s == _EARLY_WAIT_S:
            log.info("review_resolution_early", payment_id=payment_id, step=str(p.step))
        await asyncio.sleep(wait_s)
        wait_s = min(_EARLY_WAIT_MAX_S, wait_s * 2)


async def apply_review_event(event: Event, *, deps: Deps) -> Payment | None:
    """Apply a review resolution once, then run the step it recorded.

    Answers the payment as it ends (None when the event changed nothing).
    """
    resolved = review_resolved(event)
    if resolved is None:
        return None
    await _until_reviewable(resolved.payment_id, deps)
    now = deps.clock.now_us()

    def decide(p: Payment | None) -> tuple[Payment, list[Event]] | None:
        if p is None:
            log.warning(
                "review_for_unknown_payment", event_id=event.id, payment_id=resolved.payment_id
            )
            return None
        if p.tenant_id != resolved.tenant_id:
            log.warning(
                "review_tenant_mismatch",
                event_id=event.id,
                payment_id=p.id,
                event_tenant=resolved.tenant_id,
            )
            return None
        transition = domain.resolve_review(p, resolved, now)
        if transition is None:
            log.info(
                "review_resolution_ignored",
                event_id=event.id,
                payment_id=p.id,
                status=p.status.value,
                step=p.step.value if p.step else None,
            )
            return None
        new, types = transition
        new = leased(new, deps)  # this consumer runs the step next; the Resumer waits
        return new, payment_events(new, types, now)

    new = await deps.store.apply_event(CONSUMER, event.id, resolved.payment_id, decide, now_us=now)
    if new is None:
        return None
    log.info(
        "review_resolution_applied",
        payment_id=new.id,
        resolution=resolved.resolution.value,
        resolved_by=resolved.resolved_by,
    )
    if new.step is None:
        return new
    caller = Caller(tenant_id=new.tenant_id, client_id=RESUMER_CLIENT_ID)
    try:
        return await run_payment(new.id, caller=caller, deps=deps, lease="held")
    except Exception:  # the step is recorded: the Resumer carries on
        log.exception("review_step_failed", payment_id=new.id)
        return new


def review_events_handler(deps: Callable[[], Deps], *, running: asyncio.Event) -> Handler:
    """The handler of risk's review events: each waits until `running` is set, then
    applies the resolution with the service's `deps()` (built when it starts).

    Events are delivered from the bus's own task; a stopped service never acks (the
    bus cancels the wait when it stops, so the event is delivered again).
    """

    async def handle(event: Event) -> None:
        await running.wait()
        await apply_review_event(event, deps=deps())

    return handle
