"""native batch delegation: batches.mode, native_jobs, requests.native_job_id, results.native

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (a constant default is allowed on SQLite): no table is rebuilt, so
    # a store with millions of requests upgrades at once.
    op.add_column(
        "batches",
        sa.Column("mode", sa.String(length=8), server_default=sa.text("'online'"), nullable=False),
    )
    op.add_column("requests", sa.Column("native_job_id", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_requests_native_job",
        "requests",
        ["native_job_id"],
        unique=False,
        sqlite_where=sa.text("native_job_id IS NOT NULL"),
        postgresql_where=sa.text("native_job_id IS NOT NULL"),
    )
    op.add_column(
        "results",
        sa.Column("native", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_table(
        "native_jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("upstream_id", sa.String(length=256), nullable=True),
        sa.Column("upstream_state", sa.String(length=16), nullable=True),
        sa.Column("request_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("submitted_at", sa.Float(), nullable=True),
        sa.Column("polled_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("next_poll_at", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("cancel_requested_at", sa.Float(), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_native_jobs_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_native_jobs")),
    )
    op.create_index(op.f("ix_native_jobs_batch_id"), "native_jobs", ["batch_id"], unique=False)
    op.create_index(
        op.f("ix_native_jobs_state_next_poll_at"),
        "native_jobs",
        ["state", "next_poll_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_native_jobs_state_next_poll_at"), table_name="native_jobs")
    op.drop_index(op.f("ix_native_jobs_batch_id"), table_name="native_jobs")
    op.drop_table("native_jobs")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("native")
    op.drop_index("ix_requests_native_job", table_name="requests")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("native_job_id")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("mode")
