"""The risk use cases: decide on a payment once, read it back, learn from the
payment events, manage lists, and work the review queue."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any

from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger
from paymesh.platform.metrics import RISK_DECISIONS, RISK_RULE_HITS
from paymesh.risk import domain
from paymesh.risk.domain import (
    TIMEOUT_RESOLVER,
    DecidePayment,
    Decision,
    ListEntry,
    Outcome,
    Resolution,
    Review,
    ReviewStatus,
    RuleSet,
    list_field_value,
)
from paymesh.risk.errors import (
    DecisionNotFound,
    InvalidRequest,
    ReviewNotFound,
    ScopeRequired,
    TenantMismatch,
)
from paymesh.risk.events import decision_made, review_resolved
from paymesh.risk.ports import Deps, FeatureQuery

__all__ = [
    "RISK_ADMIN",
    "ResolveReview",
    "add_list_entry",
    "decide_payment",
    "expire_reviews",
    "get_decision",
    "get_review",
    "list_list_entries",
    "list_reviews",
    "remove_list_entry",
    "require_admin",
    "resolve_review",
]

log = get_logger(__name__)
SERVICE = "risk"

RISK_ADMIN = "risk:admin"
MAX_PAGE = 100


def _window_keys(cmd: DecidePayment, rules: RuleSet) -> list[str]:
    """The velocity windows a decision on `cmd` reads and then writes."""
    keys = []
    for dimension in {d for d, _ in rules.needs.windows}:
        value = domain.dimension_value(cmd, dimension)
        if value:
            keys.append(f"{cmd.tenant_id}:{dimension.value}:{value}")
    return keys


def require_admin(caller: Caller) -> None:
    """Refuse a caller without the risk:admin scope (raises ScopeRequired)."""
    if RISK_ADMIN not in caller.scopes:
        raise ScopeRequired(RISK_ADMIN)


async def decide_payment(cmd: DecidePayment, *, caller: Caller, deps: Deps) -> Decision:
    """Decide on a payment for the caller's tenant; asking again answers the stored
    decision, unchanged.

    A `cmd` naming another tenant than the caller's is refused (TenantMismatch); an
    empty tenant means the caller's. The stored decision wins even when the rules or
    the request changed since; a payment id decided for another tenant is reported as
    not found. An approved or reviewed payment goes into the velocity windows at once
    (events come later; without this a burst would slip through before they arrive).
    """
    if cmd.tenant_id and cmd.tenant_id != caller.tenant_id:
        raise TenantMismatch("tenant_id is not the caller's tenant")
    cmd = replace(cmd, tenant_id=caller.tenant_id)
    domain.validate(cmd)
    rules = deps.rules()
    if deps.features is None or not deps.features.records_with_decisions:
        return await _decide(cmd, rules, deps)
    async with deps.locks.hold(_window_keys(cmd, rules)):
        return await _decide(cmd, rules, deps)


async def _decide(cmd: DecidePayment, rules: RuleSet, deps: Deps) -> Decision:
    store, features = deps.store, deps.features
    now_us = deps.clock.now_us()
    needs = rules.needs
    # No lookup first: the insert itself finds a decision already made (and then
    # answers it), so a first Decide costs the feature reads and one write; a
    # repeated one, rare, evaluates in vain. The reads go out together.
    reads: list[Awaitable[Any]] = []
    early = features is not None and features.records_with_reads
    pairs = [(name, list_field_value(cmd, f)) for name, f in needs.lists]
    with_lists = features is not None and features.reads_lists
    if features is not None and (needs.windows or needs.payer or early or with_lists):
        on_read = pairs if with_lists else []
        reads.append(features.read(FeatureQuery(cmd, needs, now_us, record=early, lists=on_read)))
    if pairs and not with_lists:
        reads.append(store.matches(cmd.tenant_id, pairs))
    found = domain.Features(now_us=now_us)
    for result in await asyncio.gather(*reads):
        if isinstance(result, domain.Features):
            found = replace(result, lists=result.lists | found.lists)
        else:
            found = replace(found, lists=result)
    decision = domain.decide(rules, cmd, now_us=now_us, features=found)
    review = None
    if decision.outcome is Outcome.REVIEW:
        review = domain.open_review(decision, timeout_s=deps.review_timeout_s)
    counts = features is not None and decision.outcome is not Outcome.DECLINE
    together = counts and features is not None and features.records_with_decisions
    stored = await store.add(
        decision, decision_made(decision), review, velocity_at_us=now_us if together else None
    )
    if stored is decision:  # a new decision (a repeated Decide answers the stored one)
        _count(decision)
    if features is not None and early:
        # Recorded with the read (atomic check-and-add): a declined payment leaves,
        # and so does one whose id another tenant had decided (not found below).
        if stored.outcome is Outcome.DECLINE or stored.tenant_id != cmd.tenant_id:
            await features.forget(cmd)
    elif stored is decision and counts and not together and features is not None:
        await features.record(cmd, at_us=now_us)
    if stored.tenant_id != cmd.tenant_id:
        raise DecisionNotFound(cmd.payment_id)
    return stored


def _count(decision: Decision) -> None:
    """Count a new decision by outcome and the rules that fired in it."""
    _decisions(decision.outcome.value).inc()
    for reason in decision.reasons:
        _rule_hits(reason.rule_id).inc()


@functools.cache
def _decisions(outcome: str) -> Any:
    return RISK_DECISIONS.labels(service=SERVICE, decision=outcome)


# Rule ids come from the rules file (or the built-in rules): bounded by it. A reload
# may add ids; the ones it drops stay at their last count.
@functools.lru_cache(maxsize=1024)
def _rule_hits(rule_id: str) -> Any:
    return RISK_RULE_HITS.labels(service=SERVICE, rule=rule_id)


async def get_decision(payment_id: str, *, caller: Caller, deps: Deps) -> Decision:
    """The decision made for one of the caller's tenant's payments."""
    decision = await deps.store.get(payment_id) if payment_id else None
    if decision is None or decision.tenant_id != caller.tenant_id:
        raise DecisionNotFound(payment_id)
    return decision


# --- lists -------------------------------------------------------------------


async def add_list_entry(
    list_name: str, value: str, note: str, *, caller: Caller, deps: Deps
) -> ListEntry:
    """Add a value to one of the caller's tenant's lists (risk:admin)."""
    require_admin(caller)
    domain.validate_entry(list_name, value)
    entry = ListEntry(
        tenant_id=caller.tenant_id,
        list=list_name,
        value=value,
        note=note[:1000],
        created_at_us=deps.clock.now_us(),
        created_by=caller.client_id,
    )
    added = await deps.store.add_entry(entry)
    log.info("risk_list_entry_added", tenant=caller.tenant_id, list=list_name, by=caller.client_id)
    return added


async def remove_list_entry(list_name: str, value: str, *, caller: Caller, deps: Deps) -> bool:
    """Remove a value from one of the caller's tenant's lists (risk:admin)."""
    require_admin(caller)
    domain.validate_entry(list_name, value)
    removed = await deps.store.remove_entry(caller.tenant_id, list_name, value)
    log.info("risk_list_entry_removed", tenant=caller.tenant_id, list=list_name, removed=removed)
    return removed


async def list_list_entries(
    list_name: str, limit: int, starting_after: str, *, caller: Caller, deps: Deps
) -> tuple[list[ListEntry], bool]:
    """A page of the caller's tenant's list entries (one list, or all when empty)."""
    if list_name:
        domain.validate_entry(list_name, "x")
    return await deps.store.list_entries(
        caller.tenant_id, list_name, limit=_page(limit), starting_after=starting_after
    )


def _page(limit: int) -> int:
    if limit < 0:
        raise InvalidRequest("limit must not be negative")
    return min(limit or 20, MAX_PAGE)


# --- reviews -----------------------------------------------------------------


@dataclass(frozen=True)
class ResolveReview:
    """Command: approve or decline a payment in review."""

    payment_id: str
    resolution: Resolution
    note: str = ""


async def list_reviews(
    status: ReviewStatus, limit: int, starting_after: str, *, caller: Caller, deps: Deps
) -> tuple[list[Review], bool]:
    """A page of the caller's tenant's reviews in `status` (risk:admin)."""
    require_admin(caller)
    return await deps.store.list_reviews(
        caller.tenant_id, status, limit=_page(limit), starting_after=starting_after
    )


async def get_review(payment_id: str, *, caller: Caller, deps: Deps) -> Review:
    """One of the caller's tenant's reviews (risk:admin)."""
    require_admin(caller)
    return await _tenant_review(payment_id, caller.tenant_id, deps)


async def _tenant_review(payment_id: str, tenant_id: str, deps: Deps) -> Review:
    review = await deps.store.get_review(payment_id) if payment_id else None
    if review is None or review.tenant_id != tenant_id:
        raise ReviewNotFound(payment_id)
    return review


async def resolve_review(cmd: ResolveReview, *, caller: Caller, deps: Deps) -> Review:
    """Approve or decline a review once (risk:admin); the same resolution again
    answers the review as it is, the other one is refused."""
    require_admin(caller)
    by = caller.client_id or caller.tenant_id
    for _ in range(3):
        review = await _tenant_review(cmd.payment_id, caller.tenant_id, deps)
        resolved = domain.resolve(
            review, cmd.resolution, by=by, note=cmd.note[:1000], now_us=deps.clock.now_us()
        )
        if resolved is None:
            return review
        if await deps.store.resolve_review(resolved, review_resolved(resolved)):
            log.info(
                "risk_review_resolved",
                payment_id=cmd.payment_id,
                resolution=cmd.resolution.value,
                by=by,
            )
            return resolved
        # Someone else resolved it meanwhile: judge again against what they did.
    raise RuntimeError(f"review of {cmd.payment_id} keeps changing")  # pragma: no cover


async def expire_reviews(resolution: Resolution, batch: int = 100, *, deps: Deps) -> int:
    """Give every overdue open review the default resolution; how many were resolved.

    Safe with several replicas: each resolution is a conditional update, and a
    review another replica resolved first is skipped.
    """
    done = 0
    while True:
        due = await deps.store.due_reviews(deps.clock.now_us(), limit=batch)
        for review in due:
            resolved = domain.resolve(
                review, resolution, by=TIMEOUT_RESOLVER, note="", now_us=deps.clock.now_us()
            )
            if resolved is not None and await deps.store.resolve_review(
                resolved, review_resolved(resolved)
            ):
                done += 1
                log.info(
                    "risk_review_timed_out",
                    payment_id=review.payment_id,
                    resolution=resolution.value,
                )
        if len(due) < batch:
            return done
