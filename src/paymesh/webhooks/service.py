"""The webhooks use cases: manage the tenant's endpoints, take in events, resend.

Every use case acts for the caller's tenant; an endpoint or event of another
tenant is reported as not found. The plain secret leaves only through
:func:`create_endpoint` and :func:`rotate_secret`.
"""

from __future__ import annotations

from dataclasses import replace

from paymesh.contracts.events import Event
from paymesh.platform.clock import new_id
from paymesh.platform.identity import Caller
from paymesh.platform.logging import get_logger
from paymesh.webhooks import domain
from paymesh.webhooks.domain import (
    MAX_ROTATION_GRACE_S,
    CreateEndpoint,
    Delivery,
    Endpoint,
    EndpointStatus,
    is_public,
    pending_delivery,
)
from paymesh.webhooks.errors import (
    EndpointConflict,
    EndpointDisabled,
    EndpointNotFound,
    EventNotFound,
    InvalidRequest,
)
from paymesh.webhooks.ports import Deps, EndpointRecord
from paymesh.webhooks.sealing import new_secret
from paymesh.webhooks.store import DELETED
from paymesh.webhooks.transport import check_url

__all__ = [
    "DISABLED_BY_OPERATOR",
    "create_endpoint",
    "delete_endpoint",
    "disable_endpoint",
    "enable_endpoint",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "record_event",
    "resend_event",
    "rotate_secret",
]

log = get_logger(__name__)

MAX_PAGE = 100
# The disabled_reason of an endpoint an operator disabled.
DISABLED_BY_OPERATOR = "operator"


async def create_endpoint(
    cmd: CreateEndpoint, *, caller: Caller, deps: Deps
) -> tuple[Endpoint, str]:
    """Make an endpoint of the caller's with a new secret; the same id and fields again
    answer the same one.

    The endpoint is the caller's, whatever tenant `cmd` names. A new endpoint's URL
    is checked as a delivery would check it, its host resolved with ``deps.resolver``
    (see :func:`paymesh.webhooks.transport.check_url`). Returns the endpoint and its
    current secret (shown to the caller, never logged).
    """
    store, box, policy = deps.store, deps.box, deps.policy
    cmd = replace(cmd, tenant_id=caller.tenant_id, events=domain.normalise_events(cmd.events))
    domain.validate_create(cmd, environment=policy.environment, allow_private=policy.allow_private)
    existing = await store.get_endpoint(cmd.id)
    if existing is None:
        await check_url(cmd.url, allow_private=policy.allow_private, resolver=deps.resolver)
        secret = new_secret()
        endpoint = Endpoint(
            id=cmd.id,
            tenant_id=cmd.tenant_id,
            url=cmd.url,
            events=cmd.events,
            description=cmd.description,
            status=EndpointStatus.ENABLED,
            created_at_us=deps.clock.now_us(),
        )
        existing, created = await store.create_endpoint(
            EndpointRecord(endpoint, box.seal(secret, cmd.id), None)
        )
        if created:
            log.info("webhook_endpoint_created", endpoint_id=cmd.id, tenant_id=cmd.tenant_id)
            return endpoint, secret
    ep = existing.endpoint
    if ep.deleted_at_us is not None or not ep.same_request(cmd):
        raise EndpointConflict(cmd.id)
    return ep, box.open(existing.secret_sealed, ep.id)


async def _live(endpoint_id: str, caller: Caller, deps: Deps) -> EndpointRecord:
    record = await deps.store.get_endpoint(endpoint_id) if endpoint_id else None
    if (
        record is None
        or record.endpoint.tenant_id != caller.tenant_id
        or record.endpoint.deleted_at_us is not None
    ):
        raise EndpointNotFound(endpoint_id)
    return record


async def get_endpoint(endpoint_id: str, *, caller: Caller, deps: Deps) -> Endpoint:
    """One of the caller's endpoints."""
    return (await _live(endpoint_id, caller, deps)).endpoint


def _page(limit: int) -> int:
    if limit < 0 or limit > MAX_PAGE:
        raise InvalidRequest(f"limit must be 1-{MAX_PAGE}")
    return limit or 10


async def list_endpoints(
    limit: int, starting_after: str, *, caller: Caller, deps: Deps
) -> tuple[list[Endpoint], bool]:
    """The caller's endpoints, newest first; and whether more follow."""
    return await deps.store.list_endpoints(
        caller.tenant_id, limit=_page(limit), starting_after=starting_after
    )


async def delete_endpoint(endpoint_id: str, *, caller: Caller, deps: Deps) -> Endpoint:
    """Delete the endpoint: it receives nothing more, its pending deliveries fail."""
    await _live(endpoint_id, caller, deps)
    record = await deps.store.update_endpoint(
        endpoint_id,
        fail_pending=True,
        deleted_at_us=deps.clock.now_us(),
        status=EndpointStatus.DISABLED.value,
        disabled_reason=DELETED,
        previous_secret_sealed=None,
    )
    log.info("webhook_endpoint_deleted", endpoint_id=endpoint_id, tenant_id=caller.tenant_id)
    return record.endpoint


async def rotate_secret(
    endpoint_id: str, grace_period_s: int, *, caller: Caller, deps: Deps
) -> tuple[Endpoint, str]:
    """A new secret; the current one keeps signing beside it for the grace period."""
    if grace_period_s < 0 or grace_period_s > MAX_ROTATION_GRACE_S:
        raise InvalidRequest(f"grace_period_s must be 0-{MAX_ROTATION_GRACE_S}")
    record = await _live(endpoint_id, caller, deps)
    grace_s = grace_period_s or deps.policy.rotation_grace_s
    secret = new_secret()
    record = await deps.store.update_endpoint(
        endpoint_id,
        secret_sealed=deps.box.seal(secret, endpoint_id),
        previous_secret_sealed=record.secret_sealed,
        previous_secret_expires_at_us=deps.clock.now_us() + int(grace_s * 1_000_000),
    )
    log.info("webhook_secret_rotated", endpoint_id=endpoint_id, grace_s=grace_s)
    return record.endpoint, secret


async def enable_endpoint(endpoint_id: str, *, caller: Caller, deps: Deps) -> Endpoint:
    """Enable a disabled endpoint again, with a clean failure record."""
    await _live(endpoint_id, caller, deps)
    record = await deps.store.update_endpoint(
        endpoint_id,
        status=EndpointStatus.ENABLED.value,
        disabled_reason="",
        failing_since_us=None,
    )
    log.info("webhook_endpoint_enabled", endpoint_id=endpoint_id)
    return record.endpoint


async def disable_endpoint(endpoint_id: str, *, caller: Caller, deps: Deps) -> Endpoint:
    """Stop delivering to the endpoint until it is enabled again: its pending deliveries
    fail, as when it is disabled for failing."""
    await _live(endpoint_id, caller, deps)
    record = await deps.store.update_endpoint(
        endpoint_id,
        fail_pending=True,
        status=EndpointStatus.DISABLED.value,
        disabled_reason=DISABLED_BY_OPERATOR,
    )
    log.info("webhook_endpoint_disabled", endpoint_id=endpoint_id, tenant_id=caller.tenant_id)
    return record.endpoint


async def list_deliveries(
    endpoint_id: str, limit: int, starting_after: str, *, caller: Caller, deps: Deps
) -> tuple[list[Delivery], bool]:
    """The endpoint's delivery log, newest first, attempts included."""
    await _live(endpoint_id, caller, deps)
    return await deps.store.list_deliveries(
        endpoint_id, limit=_page(limit), starting_after=starting_after
    )


async def resend_event(endpoint_id: str, event_id: str, *, caller: Caller, deps: Deps) -> Delivery:
    """Deliver a stored event of the caller's to the endpoint again, as a new delivery."""
    record = await _live(endpoint_id, caller, deps)
    if record.endpoint.status is not EndpointStatus.ENABLED:
        raise EndpointDisabled(endpoint_id)
    event = await deps.store.get_event(event_id) if event_id else None
    if event is None or event.tenant_id != caller.tenant_id:
        raise EventNotFound(event_id)
    delivery = pending_delivery(
        new_id("dlv"), endpoint_id, event.id, event.type, caller.tenant_id, deps.clock.now_us()
    )
    return await deps.store.add_delivery(delivery)


async def record_event(event: Event, *, deps: Deps) -> int | None:
    """Take in one event from the bus: stored and queued for its endpoints, once per id.

    Returns how many deliveries it made; None when skipped (not public, or seen before).
    """
    if not is_public(event):
        return None
    return await deps.store.record_event(event, now_us=deps.clock.now_us())
