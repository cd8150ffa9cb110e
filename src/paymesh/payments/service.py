"""The use cases: one keyword-only function per command, dependencies passed in.

Every function takes the caller; objects are created in the caller's tenant
and another tenant's object is answered as not found. Commands that start
saga steps record the step first (a conditional transition: losing a race
is ``payment_busy`` or ``invalid_state``), then run it inline. A command that
names accounts is refused before anything is recorded when one of them is
not the tenant's (``account_not_found``, the same for an unknown id and
another tenant's account) or holds another currency (``currency_mismatch``);
the saga checks again when it moves the money. A capture or
cancel sent again with the request id that began it is that same request: it
runs what is left of its saga and answers the payment as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from paymesh.payments import domain
from paymesh.payments.domain import (
    NO_FEES,
    CancelPayment,
    CapturePayment,
    CreateP2PTransfer,
    CreatePayment,
    CreatePayout,
    CreateRefund,
    CreateTopup,
    P2PTransfer,
    Payment,
    Payout,
    Refund,
    TenantFees,
    Topup,
)
from paymesh.payments.errors import (
    Forbidden,
    IdReused,
    InvalidRequest,
    NotFound,
    PaymentBusy,
)
from paymesh.payments.ports import LedgerClient, RiskClient
from paymesh.payments.saga import (
    Deps,
    Lease,
    RetryPolicy,
    leased,
    run,
    run_payment,
    with_retries,
)
from paymesh.payments.store import StoredEvent
from paymesh.platform.identity import Caller

__all__ = [
    "Deps",
    "LedgerClient",
    "RetryPolicy",
    "RiskClient",
    "cancel_payment",
    "capture_payment",
    "create_payment",
    "create_payout",
    "create_refund",
    "create_topup",
    "create_transfer",
    "get_event",
    "get_object",
    "get_payment",
    "get_tenant_fees",
    "list_events",
    "list_objects",
    "page_limit",
    "set_tenant_fees",
    "start",
]

ADMIN_SCOPE = "admin"

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

# What an error message calls a flow's object, where not its kind.
_NOUNS = {"topup": "top-up"}


async def create_payment(cmd: CreatePayment, *, caller: Caller, deps: Deps) -> Payment:
    """Record a payment and its saga in one transaction, then run the saga.

    The tenant's fee schedule of this moment prices the payment's capture.
    """
    fees = await deps.store.get_fees(caller.tenant_id) or NO_FEES
    payment = domain.new_payment(
        cmd,
        caller.tenant_id,
        deps.clock.now_us(),
        fees=fees,
        authorization_ttl_us=int(deps.authorization_ttl_s * 1_000_000),
    )
    accounts = {"payer_account_id": cmd.payer_account_id, "payee_account_id": cmd.payee_account_id}
    return await _create(
        "payment", payment, cmd, accounts, domain.same_payment_request, caller=caller, deps=deps
    )


async def get_payment(payment_id: str, *, caller: Caller, deps: Deps) -> Payment:
    """The caller's payment."""
    found: Payment = await get_object("payment", payment_id, caller=caller, deps=deps)
    return found


async def capture_payment(cmd: CapturePayment, *, caller: Caller, deps: Deps) -> Payment:
    """Capture all or part of an authorised payment.

    A retry of the capture that began with `cmd.request_id` (its answer was
    lost) runs what is left of it and answers the payment as it is now.
    """
    p = await get_payment(cmd.id, caller=caller, deps=deps)

    def begin(payment: Payment, now_us: int) -> Payment:
        return domain.begin_capture(payment, cmd.amount, now_us, cmd.request_id)

    lease = await _start(p, begin, deps)
    return _finished(await run_payment(p.id, caller=caller, deps=deps, lease=lease))


async def cancel_payment(cmd: CancelPayment, *, caller: Caller, deps: Deps) -> Payment:
    """Release the hold of an authorised (or in review) payment.

    A retry of the cancel that began with `cmd.request_id` runs what is left
    of it and answers the payment as it is now.
    """
    p = await get_payment(cmd.id, caller=caller, deps=deps)

    def begin(payment: Payment, now_us: int) -> Payment:
        return domain.begin_cancel(payment, now_us, cmd.request_id)

    lease = await _start(p, begin, deps)
    return _finished(await run_payment(p.id, caller=caller, deps=deps, lease=lease))


async def _start(before: Payment, begin: Callable[[Payment, int], Payment], deps: Deps) -> Lease:
    """Record the step `begin` starts on `before`, unless this request already began it;
    say whether this call holds the step's lease ("held") or must claim it ("claim").

    `begin` answers the payment itself when the request is the one that
    began (a retry): nothing is recorded, the caller runs what is left once it
    claims the lease. A lost race raises what the winner's state says, unless
    the winner was this very request (a concurrent retry of it).
    """
    started = begin(before, deps.clock.now_us())
    if started is before:
        return "claim"
    if await deps.store.save_payment(leased(started, deps), status=before.status, step=before.step):
        return "held"
    again = await deps.store.get_payment(before.id)
    if again is not None and begin(again, 0) is again:
        return "claim"
    raise PaymentBusy(f"payment {before.id} changed while this command started")


async def create_refund(cmd: CreateRefund, *, caller: Caller, deps: Deps) -> Refund:
    """Reserve a refund of a captured payment atomically, then move the money back."""
    domain.validate_refund(cmd)

    def make(payment: Payment | None, reserved: int) -> Refund:
        if payment is None or payment.tenant_id != caller.tenant_id:
            raise NotFound(f"no payment {cmd.payment_id}")
        refund = domain.new_refund(cmd, payment, reserved, deps.clock.now_us())
        return leased(refund, deps)

    refund, created = await deps.store.reserve_refund(cmd.id, cmd.payment_id, make)
    if not created:
        if not domain.same_refund_request(refund, cmd, caller.tenant_id):
            raise IdReused(f"refund id {cmd.id} is already used with other fields")
        return refund
    found: Refund | None = await run("refund", refund.id, caller=caller, deps=deps, lease="held")
    return _finished(found)


async def create_topup(cmd: CreateTopup, *, caller: Caller, deps: Deps) -> Topup:
    """Record a top-up, then fund the account from the tenant's funding account."""
    topup = domain.new_topup(cmd, caller.tenant_id, deps.clock.now_us())
    accounts = {"account_id": cmd.account_id}
    return await _create(
        "topup", topup, cmd, accounts, domain.same_topup_request, caller=caller, deps=deps
    )


async def create_payout(cmd: CreatePayout, *, caller: Caller, deps: Deps) -> Payout:
    """Record a payout, then hold the money, have the bank send it and post the hold."""
    payout = domain.new_payout(cmd, caller.tenant_id, deps.clock.now_us())
    accounts = {"account_id": cmd.account_id}
    return await _create(
        "payout", payout, cmd, accounts, domain.same_payout_request, caller=caller, deps=deps
    )


async def create_transfer(cmd: CreateP2PTransfer, *, caller: Caller, deps: Deps) -> P2PTransfer:
    """Record a transfer between two of the tenant's accounts, then move the money."""
    transfer = domain.new_p2p_transfer(cmd, caller.tenant_id, deps.clock.now_us())
    accounts = {"from_account_id": cmd.from_account_id, "to_account_id": cmd.to_account_id}
    return await _create(
        "transfer", transfer, cmd, accounts, domain.same_p2p_request, caller=caller, deps=deps
    )


async def _create(
    kind: str,
    obj: T,
    cmd: Any,
    accounts: Mapping[str, str],
    same_request: Callable[[T, Any, str], bool],
    *,
    caller: Caller,
    deps: Deps,
) -> T:
    """Refuse `cmd` when the `accounts` it names are not the caller's or hold another
    currency; else record its new object `obj` and run its saga (see :func:`start`;
    a stored object is this request's retry when ``same_request(stored, cmd, tenant)``)."""
    await _check_accounts(accounts, cmd.currency, caller=caller, deps=deps)

    def same(stored: T) -> bool:
        return same_request(stored, cmd, caller.tenant_id)

    return await start(kind, obj, same, caller=caller, deps=deps, noun=_NOUNS.get(kind, ""))


async def get_object(kind: str, object_id: str, *, caller: Caller, deps: Deps) -> Any:
    """The caller's object of flow `kind` (another tenant's is not found, like an unknown one)."""
    found = await deps.store.get(kind, object_id)
    if found is None or found.tenant_id != caller.tenant_id:
        raise NotFound(f"no {_NOUNS.get(kind, kind)} {object_id}")
    return found


async def list_objects(
    kind: str, *, caller: Caller, deps: Deps, limit: int = 0, starting_after: str = ""
) -> tuple[list[Any], bool]:
    """One page of the caller's objects of flow `kind`, newest first, after the one
    `starting_after` names; and whether more follow."""
    limit = page_limit(limit)
    cursor = None
    if starting_after:
        try:
            cursor = await get_object(kind, starting_after, caller=caller, deps=deps)
        except NotFound:
            raise InvalidRequest(f"starting_after: no {kind} {starting_after}") from None
    found, more = await deps.store.list_objects(
        kind, caller.tenant_id, limit=limit, starting_after=cursor
    )
    return found, more


def page_limit(limit: int) -> int:
    """The page size asked for (0: the default), refused outside 1..MAX_LIMIT."""
    limit = limit or DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


async def set_tenant_fees(fees: TenantFees, *, caller: Caller, deps: Deps) -> TenantFees:
    """Set a tenant's fee schedule: operators (scope admin) only, for any tenant.

    A tenant may not price its own payments: the fee is what the platform
    charges it, so even its own schedule needs an operator.
    """
    if ADMIN_SCOPE not in caller.scopes:
        raise Forbidden("only an operator (scope admin) may set a tenant's fees")
    fees = TenantFees(fees.tenant_id, fees.fixed, fees.basis_points, deps.clock.now_us())
    domain.validate_fees(fees)
    await deps.store.set_fees(fees)
    return fees


async def get_tenant_fees(tenant_id: str, *, caller: Caller, deps: Deps) -> TenantFees:
    """A tenant's fee schedule: the caller's own, or any tenant's for an operator."""
    tenant_id = tenant_id or caller.tenant_id
    if tenant_id != caller.tenant_id and ADMIN_SCOPE not in caller.scopes:
        raise NotFound(f"no fees for tenant {tenant_id}")
    found = await deps.store.get_fees(tenant_id)
    return found or TenantFees(tenant_id=tenant_id)


async def list_events(
    *, caller: Caller, deps: Deps, limit: int = 0, starting_after: str = ""
) -> tuple[list[StoredEvent], bool]:
    """The caller's events, newest first; and whether more follow."""
    limit = page_limit(limit)
    before = None
    if starting_after:
        cursor = await deps.store.get_event(caller.tenant_id, starting_after)
        if cursor is None:
            raise InvalidRequest(f"starting_after: no event {starting_after}")
        before = cursor.seq
    return await deps.store.list_events(caller.tenant_id, limit=limit, before_seq=before)


async def get_event(event_id: str, *, caller: Caller, deps: Deps) -> StoredEvent:
    """The caller's event."""
    found = await deps.store.get_event(caller.tenant_id, event_id)
    if found is None:
        raise NotFound(f"no event {event_id}")
    return found


async def _check_accounts(
    named: Mapping[str, str], currency: str, *, caller: Caller, deps: Deps
) -> None:
    """Refuse a command whose accounts are not the caller's or hold another currency.

    Asked of the ledger (one batch lookup, as the caller) before the command
    is recorded, so a refused command leaves no object, saga or event behind.
    A lookup that keeps failing transiently raises: nothing is recorded either.
    """
    ids = list(dict.fromkeys(named.values()))
    found = await with_retries(deps.retry, partial(deps.ledger.lookup_accounts, caller, ids))
    domain.check_accounts(
        named, currency, {a.id: a.currency for a in found}, {a.id: a.code for a in found}
    )


async def start(
    kind: str, obj: T, same: Callable[[T], bool], *, caller: Caller, deps: Deps, noun: str = ""
) -> T:
    """Record a new object of flow `kind` and run its saga; or, when its id is taken,
    answer the stored one if `same` says this request is its retry (else ``id_reused``,
    naming it `noun`, by default its kind)."""
    new: Any = leased(obj, deps)  # any flow's object: a frozen dataclass with the saga columns
    existing: T | None = await deps.store.add(kind, new)
    if existing is not None:
        if not same(existing):
            raise IdReused(f"{noun or kind} id {new.id} is already used with other fields")
        return existing
    found: T | None = await run(kind, new.id, caller=caller, deps=deps, lease="held", recorded=new)
    return _finished(found)


def _finished(obj: T | None) -> T:
    if obj is None:  # rows are never deleted
        raise NotFound("the object vanished")
    return obj
