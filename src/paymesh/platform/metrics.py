"""Every Prometheus metric of paymesh, defined in one place (on the default registry).

This module is the catalogue: names follow Prometheus conventions (``paymesh_``
prefix, base units, ``_total`` for counters, ``_seconds`` for durations), and
every series carries ``service`` (``gateway``, ``accounts``, ``payments``,
``risk``, ``webhooks``), so the embedded platform, five services in one
process, serves them all on one endpoint and a dashboard can tell them apart.
Labels are bounded: no ids, no amounts, no free text; a rule id or a failure
code comes from a closed set (the rules file, the code's own constants).

Dashboards (``deploy/grafana``) and alerts (``deploy/prometheus``) name these
metrics; a test checks that every name they use is exposed by the running
platform. Add a metric here first, then instrument it where it happens.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "AUTH_FAILURES",
    "DB_SQLITE_WRITE_LOCK_WAIT",
    "DB_TRANSACTION_DURATION",
    "EVENTS_HANDLED",
    "EVENT_CONSUMER_LAG",
    "EVENT_HANDLER_ERRORS",
    "GRPC_CLIENT_DURATION",
    "GRPC_SERVER_DURATION",
    "HTTP_SERVER_DURATION",
    "IDEMPOTENCY",
    "KAFKA_DEAD_LETTERS",
    "LEDGER_BATCH_TRANSFERS",
    "LEDGER_CHAIN_HEAD_SEQ",
    "LEDGER_TRANSFERS",
    "LEDGER_VERIFY_PROBLEMS",
    "OUTBOX_OLDEST_PENDING_AGE",
    "OUTBOX_PENDING",
    "PAYMENTS_AMOUNT",
    "PAYMENTS_COMPLETED",
    "RATE_LIMITED",
    "READY",
    "RECONCILIATION_BREAKS_RESOLVED",
    "RECONCILIATION_LINES",
    "RISK_DECISIONS",
    "RISK_RULE_HITS",
    "SAGAS_OPEN",
    "SAGA_OLDEST_OPEN_AGE",
    "SETTLEMENT_PAYOUTS",
    "SETTLEMENT_PAYOUT_AMOUNT",
    "SETTLEMENT_RUNS",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_ATTEMPT_DURATION",
    "WEBHOOK_ENDPOINTS_DISABLED",
]

# Latency buckets from 1 ms to 30 s: a gRPC hop is ~0.3 ms, a payment tens of ms,
# a webhook attempt up to its timeout.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# --- golden signals ------------------------------------------------------------------

HTTP_SERVER_DURATION = Histogram(
    "paymesh_http_server_request_duration_seconds",
    "REST requests answered, by route template (e.g. /v1/payments/{payment_id}), method and"
    " status code; _count is the request rate.",
    ["service", "method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
GRPC_SERVER_DURATION = Histogram(
    "paymesh_grpc_server_handled_seconds",
    "gRPC calls a service handled, by full method (/paymesh.payments.v1.Payments/CreatePayment)"
    " and status code (OK, NOT_FOUND, UNAVAILABLE...).",
    ["service", "grpc_method", "grpc_code"],
    buckets=LATENCY_BUCKETS,
)
GRPC_CLIENT_DURATION = Histogram(
    "paymesh_grpc_client_handled_seconds",
    "gRPC calls a service made to another one (service is the caller), by method and code.",
    ["service", "grpc_method", "grpc_code"],
    buckets=LATENCY_BUCKETS,
)
DB_TRANSACTION_DURATION = Histogram(
    "paymesh_db_transaction_duration_seconds",
    "Database transactions, begin to commit or rollback, by kind (read or write).",
    ["service", "kind"],
    buckets=LATENCY_BUCKETS,
)
DB_SQLITE_WRITE_LOCK_WAIT = Histogram(
    "paymesh_db_sqlite_write_lock_wait_seconds",
    "Time a SQLite write transaction waited for the database's write lock (BEGIN IMMEDIATE).",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
READY = Gauge(
    "paymesh_ready",
    "1 while the service can serve (its database, Kafka and Redis answer, consumers run).",
    ["service"],
)

# --- payments ------------------------------------------------------------------------

PAYMENTS_COMPLETED = Counter(
    "paymesh_payments_completed_total",
    "Payments, refunds, top-ups, payouts and transfers that reached a final status, by kind"
    " (payment, refund, topup, payout, transfer), status and failure code ('' when none).",
    ["service", "kind", "status", "failure_code"],
)
PAYMENTS_AMOUNT = Counter(
    "paymesh_payments_amount_minor_total",
    "Money moved by succeeded payments (captured), refunds, top-ups, payouts and transfers,"
    " in minor units of the currency.",
    ["service", "kind", "currency"],
)
SETTLEMENT_RUNS = Counter(
    "paymesh_settlement_runs_total",
    "Settlement runs made, by status (paid_out, pending_approval, nothing_to_pay).",
    ["service", "status"],
)
SETTLEMENT_PAYOUTS = Counter(
    "paymesh_settlement_payouts_total",
    "Settlement lines paid out (a payout started), and their amount in minor units by currency.",
    ["service", "currency"],
)
SETTLEMENT_PAYOUT_AMOUNT = Counter(
    "paymesh_settlement_payout_amount_minor_total",
    "Money settlement runs paid out, in minor units of the currency.",
    ["service", "currency"],
)
RECONCILIATION_LINES = Counter(
    "paymesh_reconciliation_lines_total",
    "Bank statement lines (and, for unmatched_ledger, ledger payouts) reconciled, by result.",
    ["service", "result"],
)
RECONCILIATION_BREAKS_RESOLVED = Counter(
    "paymesh_reconciliation_breaks_resolved_total",
    "Reconciliation breaks an operator resolved, by type and action.",
    ["service", "type", "action"],
)
SAGAS_OPEN = Gauge(
    "paymesh_sagas_open",
    "Saga objects with a step in progress, by flow (payment, refund, topup, payout, transfer)"
    " and step.",
    ["service", "flow", "step"],
)
SAGA_OLDEST_OPEN_AGE = Gauge(
    "paymesh_saga_oldest_open_age_seconds",
    "Age of the oldest step in progress of each flow (0 when none).",
    ["service", "flow"],
)

# --- events --------------------------------------------------------------------------

OUTBOX_PENDING = Gauge(
    "paymesh_outbox_pending_rows",
    "Outbox rows committed but not yet published to the event bus.",
    ["service"],
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "paymesh_outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row not yet published (0 when none).",
    ["service"],
)
EVENTS_HANDLED = Counter(
    "paymesh_events_handled_total",
    "Events a consumer group's handler finished (duplicates absorbed by the inbox included).",
    ["service", "group", "topic"],
)
EVENT_HANDLER_ERRORS = Counter(
    "paymesh_event_handler_errors_total",
    "Failed attempts of a consumer group's handler (each retry counts).",
    ["service", "group", "topic"],
)
EVENT_CONSUMER_LAG = Gauge(
    "paymesh_event_consumer_lag",
    "Events published but not yet handled by a consumer group, per topic (Kafka: high"
    " watermark minus committed offset, summed over the group's partitions in this process).",
    ["service", "group", "topic"],
)
KAFKA_DEAD_LETTERS = Counter(
    "paymesh_kafka_dead_letters_total",
    "Records a consumer group moved to a dead-letter topic (<topic>.dlq).",
    ["service", "group", "topic"],
)

# --- accounts (the ledger) -----------------------------------------------------------

LEDGER_BATCH_TRANSFERS = Histogram(
    "paymesh_ledger_batch_transfers",
    "Transfers per committed ledger transaction (group commit merges concurrent batches).",
    ["service"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8190),
)
LEDGER_TRANSFERS = Counter(
    "paymesh_ledger_transfers_total",
    "Transfers the ledger decided, by result code (ok, exists, exceeds_credits, ...).",
    ["service", "result"],
)
LEDGER_CHAIN_HEAD_SEQ = Gauge(
    "paymesh_ledger_chain_head_seq",
    "Sequence number of the newest batch in the ledger's hash chain.",
    ["service"],
)
LEDGER_VERIFY_PROBLEMS = Gauge(
    "paymesh_ledger_verify_problems",
    "Problems the accounts service's last periodic ledger check found (0: the ledger audits"
    " clean).",
    ["service"],
)

# --- risk ----------------------------------------------------------------------------

RISK_DECISIONS = Counter(
    "paymesh_risk_decisions_total",
    "Risk decisions made, by decision (approve, review, decline).",
    ["service", "decision"],
)
RISK_RULE_HITS = Counter(
    "paymesh_risk_rule_hits_total",
    "Rules that fired in a decision, by rule id (from the rules file).",
    ["service", "rule"],
)

# --- webhooks ------------------------------------------------------------------------

WEBHOOK_ATTEMPTS = Counter(
    "paymesh_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (delivered, failed, refused, timeout, ...).",
    ["service", "outcome"],
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "paymesh_webhook_attempt_duration_seconds",
    "Time of a webhook delivery attempt, request to answer.",
    ["service", "outcome"],
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "paymesh_webhook_endpoints_disabled_total",
    "Endpoints disabled after failing for too long.",
    ["service"],
)

# --- the gateway's protections -------------------------------------------------------

RATE_LIMITED = Counter(
    "paymesh_rate_limited_total",
    "Requests refused with 429, by limit (client, auth_failures, overloaded, ...).",
    ["service", "limit"],
)
AUTH_FAILURES = Counter(
    "paymesh_auth_failures_total",
    "Failed authentications, by reason (invalid_client, invalid_token, expired, ...).",
    ["service", "reason"],
)
IDEMPOTENCY = Counter(
    "paymesh_idempotency_requests_total",
    "Requests carrying an Idempotency-Key, by outcome (first, replayed, conflict, in_progress).",
    ["service", "outcome"],
)
