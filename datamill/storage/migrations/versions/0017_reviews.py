"""reviews: review settings, reviews, claims (assignments and reservations) and gold
answers; samples.review_state and samples.review_count, indexed for the review queue

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_Id64 = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # Server defaults: existing samples are unreviewed, with no review, at once.
    op.add_column(
        "samples",
        sa.Column(
            "review_state", sa.String(16), server_default=sa.text("'unreviewed'"), nullable=False
        ),
    )
    op.add_column(
        "samples",
        sa.Column("review_count", sa.Integer, server_default=sa.text("0"), nullable=False),
    )
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "ix_samples_review_queue",
        "samples",
        ["dataset_id", "review_state", "seq"],
        sqlite_where=live,
        postgresql_where=live,
    )
    op.create_table(
        "review_settings",
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("overlap", sa.Integer, nullable=False),
        sa.Column("blind", sa.Boolean, nullable=False),
        sa.Column("rule", sa.String(16), nullable=False),
        sa.Column("reservation_seconds", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_review_settings_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_review_settings")),
    )
    op.create_table(
        "reviews",
        sa.Column("seq", _Id64, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("edited", sa.Boolean, nullable=False),
        sa.Column("adjudication", sa.Boolean, nullable=False),
        sa.Column("current", sa.Boolean, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("replaced_at", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_reviews_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_reviews_sample_id_samples")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_reviews")),
        sa.UniqueConstraint("id", name=op.f("uq_reviews_id")),
    )
    op.create_index(
        "ix_reviews_sample_id_reviewer_current", "reviews", ["sample_id", "reviewer", "current"]
    )
    op.create_index("ix_reviews_dataset_id_reviewer", "reviews", ["dataset_id", "reviewer"])
    op.create_index("ix_reviews_dataset_id_seq", "reviews", ["dataset_id", "seq"])
    op.create_table(
        "review_claims",
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("assigned", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_review_claims_sample_id_samples")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_review_claims_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("sample_id", "reviewer", name=op.f("pk_review_claims")),
    )
    op.create_index(
        "ix_review_claims_dataset_id_reviewer", "review_claims", ["dataset_id", "reviewer"]
    )
    op.create_table(
        "review_gold",
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("answers", sa.JSON, nullable=False),
        sa.Column("set_by", sa.String(64), nullable=True),
        sa.Column("set_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id"], ["samples.id"], name=op.f("fk_review_gold_sample_id_samples")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_review_gold_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("sample_id", name=op.f("pk_review_gold")),
    )
    op.create_index("ix_review_gold_dataset_id", "review_gold", ["dataset_id"])


def downgrade() -> None:
    op.drop_table("review_gold")
    op.drop_table("review_claims")
    op.drop_table("reviews")
    op.drop_table("review_settings")
    op.drop_index("ix_samples_review_queue", "samples")
    op.drop_column("samples", "review_count")
    op.drop_column("samples", "review_state")
