"""cost accounting: results.cost and .model, batches.cost and .stop_reason, gateway_calls

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs with constant defaults: no table is rebuilt.
    zero = sa.text("0")
    op.add_column("results", sa.Column("model", sa.String(256), nullable=True))
    op.add_column("results", sa.Column("cost", sa.Float, nullable=False, server_default=zero))
    op.create_index(op.f("ix_results_finished_at"), "results", ["finished_at"])
    op.add_column("batches", sa.Column("cost", sa.Float, nullable=False, server_default=zero))
    op.add_column("batches", sa.Column("stop_reason", sa.String(32), nullable=True))
    op.create_table(
        "gateway_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("deployment", sa.String(128), nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("first_token_ms", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index(op.f("ix_gateway_calls_created_at"), "gateway_calls", ["created_at"])


def downgrade() -> None:
    op.drop_table("gateway_calls")
    op.drop_column("batches", "stop_reason")
    op.drop_column("batches", "cost")
    op.drop_index(op.f("ix_results_finished_at"), table_name="results")
    op.drop_column("results", "cost")
    op.drop_column("results", "model")
