"""sample_history: every version of an edited sample, restorable; samples.batch_id and
samples.job_id: provenance's, indexed for the filters

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_Id64 = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # A new table: nothing existing is rewritten.
    op.create_table(
        "sample_history",
        sa.Column("seq", _Id64, autoincrement=True),
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("restored_from", sa.Integer, nullable=True),
        sa.Column("topic", sa.String(200), nullable=True),
        sa.Column("sample_type", sa.String(100), nullable=True),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("changed_by", sa.String(64), nullable=True),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_sample_history_sample_id_samples")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_sample_history")),
        sa.UniqueConstraint(
            "sample_id", "version", name=op.f("uq_sample_history_sample_id_version")
        ),
    )

    op.add_column("samples", sa.Column("batch_id", sa.String(256), nullable=True))
    op.add_column("samples", sa.Column("job_id", sa.String(256), nullable=True))
    # Existing samples: copied from their provenance (plain strings that fit; a longer one
    # was never a batch's or a job's id).
    for name in ("batch_id", "job_id"):
        if op.get_context().dialect.name == "postgresql":
            value = f"provenance->>'{name}'"
            kind = f"json_typeof(provenance->'{name}') = 'string'"
        else:
            value = f"json_extract(provenance, '$.{name}')"
            kind = f"json_type(provenance, '$.{name}') = 'text'"
        op.execute(
            f"UPDATE samples SET {name} = {value} WHERE provenance IS NOT NULL AND {kind} "
            f"AND length({value}) <= 256"
        )
        where = sa.text(f"{name} IS NOT NULL")
        op.create_index(
            f"ix_samples_{name}",
            "samples",
            ["dataset_id", name],
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    op.drop_index("ix_samples_job_id", "samples")
    op.drop_index("ix_samples_batch_id", "samples")
    op.drop_column("samples", "job_id")
    op.drop_column("samples", "batch_id")
    op.drop_table("sample_history")
