"""Endpoints, events, deliveries, attempts, the outbox and the inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("disabled_reason", sa.String(128), nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("previous_secret_sealed", sa.Text, nullable=True),
        sa.Column("previous_secret_expires_at_us", sa.BigInteger, nullable=True),
        sa.Column("failing_since_us", sa.BigInteger, nullable=True),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("deleted_at_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_endpoints_tenant_created", "endpoints", ["tenant_id", "created_at_us"])
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts_count", sa.Integer, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_at_us", sa.BigInteger, nullable=False),
        sa.Column("first_attempt_at_us", sa.BigInteger, nullable=True),
        sa.Column("lease_until_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at_us"])
    op.create_index(
        "ix_deliveries_endpoint_created", "deliveries", ["endpoint_id", "created_at_us"]
    )
    op.create_table(
        "attempts",
        sa.Column("delivery_id", sa.String(64), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("started_at_us", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.BigInteger, nullable=False),
        sa.Column("error", sa.String(64), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("published_at_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_outbox_tenant_seq", "outbox", ["tenant_id", "seq"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_index("ix_outbox_tenant_seq", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("attempts")
    op.drop_index("ix_deliveries_endpoint_created", table_name="deliveries")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("events")
    op.drop_index("ix_endpoints_tenant_created", table_name="endpoints")
    op.drop_table("endpoints")
