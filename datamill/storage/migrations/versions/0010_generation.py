"""generation jobs: jobs, cells, rejections, requests, runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_Id64 = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_ZERO = sa.text("0")
_LIVE = sa.text("state != 'done'")


def _job_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["job_id"],
        ["generation_jobs.id"],
        name=op.f(f"fk_{table}_job_id_generation_jobs"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "generation_jobs",
        sa.Column("seq", _Id64, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("stop_reason", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("spec_text", sa.Text, nullable=True),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("spec_version", sa.Integer, nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("budget_usd", sa.Float, nullable=True),
        sa.Column("budget_requests", sa.BigInteger, nullable=True),
        sa.Column("budget_seconds", sa.Float, nullable=True),
        sa.Column("cost", sa.Float, nullable=False, server_default=_ZERO),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default=_ZERO),
        sa.Column("accepted", sa.BigInteger, nullable=False, server_default=_ZERO),
        sa.Column("rejected", sa.BigInteger, nullable=False, server_default=_ZERO),
        sa.Column("duplicates", sa.BigInteger, nullable=False, server_default=_ZERO),
        sa.Column("surplus", sa.BigInteger, nullable=False, server_default=_ZERO),
        sa.Column("elapsed", sa.Float, nullable=False, server_default=_ZERO),
        sa.Column("runner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("run_started_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("progress_at", sa.Float, nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_generation_jobs_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_generation_jobs_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_generation_jobs")),
        sa.UniqueConstraint("id", name=op.f("uq_generation_jobs_id")),
    )
    op.create_index(
        op.f("ix_generation_jobs_project_id_idempotency_key"),
        "generation_jobs",
        ["project_id", "idempotency_key"],
        unique=True,
    )
    op.create_index(
        op.f("ix_generation_jobs_project_id_seq"), "generation_jobs", ["project_id", "seq"]
    )
    op.create_index(op.f("ix_generation_jobs_status"), "generation_jobs", ["status"])
    op.create_table(
        "generation_cells",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("sample_type", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("target", sa.Integer, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False, server_default=_ZERO),
        sa.Column("rejected", sa.Integer, nullable=False, server_default=_ZERO),
        sa.Column("duplicates", sa.Integer, nullable=False, server_default=_ZERO),
        sa.Column("surplus", sa.Integer, nullable=False, server_default=_ZERO),
        sa.Column("requests", sa.Integer, nullable=False, server_default=_ZERO),
        sa.Column("cost", sa.Float, nullable=False, server_default=_ZERO),
        _job_fk("generation_cells"),
        sa.PrimaryKeyConstraint("job_id", "topic", "sample_type", name=op.f("pk_generation_cells")),
    )
    op.create_table(
        "generation_rejections",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("sample_type", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        _job_fk("generation_rejections"),
        sa.PrimaryKeyConstraint(
            "job_id", "topic", "sample_type", "reason", name=op.f("pk_generation_rejections")
        ),
    )
    op.create_table(
        "generation_requests",
        sa.Column("id", _Id64, autoincrement=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("sample_type", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("custom_id", sa.String(512), nullable=True),
        sa.Column("candidate", sa.JSON, nullable=True),
        _job_fk("generation_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_requests")),
    )
    op.create_index(
        "ix_generation_requests_live",
        "generation_requests",
        ["job_id", "state"],
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )
    op.create_index(
        op.f("ix_generation_requests_batch_id_custom_id"),
        "generation_requests",
        ["batch_id", "custom_id"],
    )
    op.create_table(
        "generation_runs",
        sa.Column("seq", _Id64, autoincrement=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("runner", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("accepted_before", sa.BigInteger, nullable=False),
        sa.Column("accepted_after", sa.BigInteger, nullable=True),
        _job_fk("generation_runs"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_generation_runs")),
    )
    op.create_index(op.f("ix_generation_runs_job_id_seq"), "generation_runs", ["job_id", "seq"])


def downgrade() -> None:
    for table in (
        "generation_runs",
        "generation_requests",
        "generation_rejections",
        "generation_cells",
        "generation_jobs",
    ):
        op.drop_table(table)
