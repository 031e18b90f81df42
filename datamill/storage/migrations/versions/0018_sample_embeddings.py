"""sample_embeddings: each sample's embedding, stored once per model and content

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table: nothing existing is rewritten; samples are embedded when next used.
    op.create_table(
        "sample_embeddings",
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_sample_embeddings_sample_id_samples")
        ),
        sa.PrimaryKeyConstraint("sample_id", "model", name=op.f("pk_sample_embeddings")),
    )


def downgrade() -> None:
    op.drop_table("sample_embeddings")
