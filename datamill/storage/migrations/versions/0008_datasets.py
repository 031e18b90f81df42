"""datasets and samples, with full-text search over samples

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from datamill.storage.search import create_search_objects

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

_LIVE = sa.text("deleted_at IS NULL")
_DELETED = sa.text("deleted_at IS NOT NULL")
_Id64 = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("seq", _Id64, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_datasets")),
        sa.UniqueConstraint("id", name=op.f("uq_datasets_id")),
    )
    op.create_index(
        "uq_datasets_live_name",
        "datasets",
        ["project_id", "name"],
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )
    op.create_index(op.f("ix_datasets_project_id_seq"), "datasets", ["project_id", "seq"])
    op.create_table(
        "samples",
        sa.Column("seq", _Id64, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(200), nullable=True),
        sa.Column("sample_type", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'accepted'")),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("provenance", sa.JSON, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("cost", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("random_key", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("deleted_at", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_samples_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_samples")),
        sa.UniqueConstraint("id", name=op.f("uq_samples_id")),
    )
    op.create_index(
        "uq_samples_live_hash",
        "samples",
        ["dataset_id", "content_hash"],
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )
    op.create_index(op.f("ix_samples_dataset_id_seq"), "samples", ["dataset_id", "seq"])
    op.create_index(
        "ix_samples_live_cells",
        "samples",
        ["dataset_id", "topic", "sample_type", "status"],
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )
    for column in ("sample_type", "model", "random_key"):
        op.create_index(op.f(f"ix_samples_dataset_id_{column}"), "samples", ["dataset_id", column])
    op.create_index(
        "ix_samples_deleted",
        "samples",
        ["dataset_id", "deleted_at"],
        sqlite_where=_DELETED,
        postgresql_where=_DELETED,
    )
    create_search_objects(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE samples_fts")  # its triggers go with the samples table
    op.drop_table("samples")
    op.drop_table("datasets")
