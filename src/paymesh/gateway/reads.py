"""The plain reads of every feature, as one table: each row is a resource whose list
and get routes only ask its service and render the answer (see
:class:`~paymesh.gateway.pages.Reads`).

A feature declares its rows' routes (:func:`~paymesh.gateway.pages.declare_reads`)
where they stand among its other routes, so the OpenAPI document keeps its order.
Reads that do more (a check first, a filter, a path of two ids) stay handlers in the
feature's api.py.
"""

from __future__ import annotations

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.contracts.webhooks.v1 import webhooks_pb2 as wpb
from paymesh.gateway.deps import Payments, Webhooks
from paymesh.gateway.domain import PAYMENTS_READ, WEBHOOKS_WRITE
from paymesh.gateway.features.events.schemas import EventList, EventOut
from paymesh.gateway.features.events.views import event_view
from paymesh.gateway.features.payments.schemas import PaymentList, PaymentOut, RefundList, RefundOut
from paymesh.gateway.features.payments.views import payment_view, refund_view
from paymesh.gateway.features.transfers.schemas import (
    PayoutList,
    PayoutOut,
    TopupList,
    TopupOut,
    TransferList,
    TransferOut,
)
from paymesh.gateway.features.transfers.views import payout_view, topup_view, transfer_view
from paymesh.gateway.features.webhooks.schemas import WebhookEndpointList, WebhookEndpointOut
from paymesh.gateway.features.webhooks.views import endpoint_view
from paymesh.gateway.pages import Reads

__all__ = ["ENDPOINTS", "EVENTS", "PAYMENTS", "PAYOUTS", "REFUNDS", "TOPUPS", "TRANSFERS"]

_OTHER_TENANTS = "(another tenant's is a 404)"

PAYMENTS = Reads(
    path="/v1/payments",
    param="payment_id",
    scope=PAYMENTS_READ,
    tag=None,
    client=Payments,
    names=("list_payments", "get_payment"),
    summaries=("List payments", "Get a payment"),
    docs=("The tenant's payments, newest first.", f"A payment of the tenant {_OTHER_TENANTS}."),
    cursor="The last payment id of the previous page.",
    models=(PaymentList, PaymentOut),
    view=payment_view,
    list=lambda stub: stub.ListPayments,
    list_request=ppb.ListPaymentsRequest,
    items="payments",
    get=lambda stub: stub.GetPayment,
    get_request=ppb.GetPaymentRequest,
)

REFUNDS = Reads(
    path="/v1/refunds",
    param="refund_id",
    scope=PAYMENTS_READ,
    tag="refunds",
    client=Payments,
    names=("list_refunds", "get_refund"),
    summaries=("List refunds", "Get a refund"),
    docs=("The tenant's refunds, newest first.", "A refund of the tenant."),
    cursor="The last refund id of the previous page.",
    models=(RefundList, RefundOut),
    view=refund_view,
    list=lambda stub: stub.ListRefunds,
    list_request=ppb.ListRefundsRequest,
    items="refunds",
    get=lambda stub: stub.GetRefund,
    get_request=ppb.GetRefundRequest,
)

TOPUPS = Reads(
    path="/v1/topups",
    param="topup_id",
    scope=PAYMENTS_READ,
    tag="topups",
    client=Payments,
    names=("list_topups", "get_topup"),
    summaries=("List top-ups", "Get a top-up"),
    docs=("The tenant's top-ups, newest first.", "A top-up of the tenant."),
    cursor="The last top-up id of the previous page.",
    models=(TopupList, TopupOut),
    view=topup_view,
    list=lambda stub: stub.ListTopups,
    list_request=ppb.ListTopupsRequest,
    items="topups",
    get=lambda stub: stub.GetTopup,
    get_request=ppb.GetTopupRequest,
)

PAYOUTS = Reads(
    path="/v1/payouts",
    param="payout_id",
    scope=PAYMENTS_READ,
    tag="payouts",
    client=Payments,
    names=("list_payouts", "get_payout"),
    summaries=("List payouts", "Get a payout"),
    docs=("The tenant's payouts, newest first.", f"A payout of the tenant {_OTHER_TENANTS}."),
    cursor="The last payout id of the previous page.",
    models=(PayoutList, PayoutOut),
    view=payout_view,
    list=lambda stub: stub.ListPayouts,
    list_request=ppb.ListPayoutsRequest,
    items="payouts",
    get=lambda stub: stub.GetPayout,
    get_request=ppb.GetPayoutRequest,
)

TRANSFERS = Reads(
    path="/v1/transfers",
    param="transfer_id",
    scope=PAYMENTS_READ,
    tag="transfers",
    client=Payments,
    names=("list_transfers", "get_transfer"),
    summaries=("List transfers", "Get a transfer"),
    docs=(
        "The tenant's transfers between accounts, newest first.",
        f"A transfer of the tenant {_OTHER_TENANTS}.",
    ),
    cursor="The last transfer id of the previous page.",
    models=(TransferList, TransferOut),
    view=transfer_view,
    list=lambda stub: stub.ListTransfers,
    list_request=ppb.ListTransfersRequest,
    items="transfers",
    get=lambda stub: stub.GetTransfer,
    get_request=ppb.GetTransferRequest,
)

EVENTS = Reads(
    path="/v1/events",
    param="event_id",
    scope=PAYMENTS_READ,
    tag="events",
    client=Payments,
    names=("list_events", "get_event"),
    summaries=("List events", "Get an event"),
    docs=(
        "The tenant's events, newest first: the CloudEvents that webhooks deliver.",
        f"An event of the tenant {_OTHER_TENANTS}.",
    ),
    cursor="The last event id of the previous page.",
    models=(EventList, EventOut),
    view=event_view,
    list=lambda stub: stub.ListEvents,
    list_request=ppb.ListEventsRequest,
    items="events",
    get=lambda stub: stub.GetEvent,
    get_request=ppb.GetEventRequest,
)

ENDPOINTS = Reads(
    path="/v1/webhook_endpoints",
    param="endpoint_id",
    scope=WEBHOOKS_WRITE,
    tag="webhooks",
    client=Webhooks,
    names=("list_endpoints", "get_endpoint"),
    summaries=("List webhook endpoints", "Get a webhook endpoint"),
    docs=(
        "The tenant's webhook endpoints, newest first (without their secrets).",
        f"An endpoint of the tenant {_OTHER_TENANTS}, without its secret.",
    ),
    cursor="The last endpoint id of the previous page.",
    models=(WebhookEndpointList, WebhookEndpointOut),
    view=endpoint_view,
    list=lambda stub: stub.ListEndpoints,
    list_request=wpb.ListEndpointsRequest,
    items="data",
    get=lambda stub: stub.GetEndpoint,
    get_request=wpb.GetEndpointRequest,
    get_problems=(401, 403, 404, 422, 503),
)
