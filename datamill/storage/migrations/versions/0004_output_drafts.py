"""output drafts; pending and leased requests indexed by line

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEXES = {"ix_requests_pending": "pending", "ix_requests_leased": "leased"}
_BEFORE = {"ix_requests_pending": ["batch_id", "id"], "ix_requests_leased": ["lease_owner"]}


def _index(name: str, columns: list[str]) -> None:
    where = sa.text(f"state = '{_INDEXES[name]}'")
    op.create_index(name, "requests", columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="requests")
        _index(name, ["batch_id", "line"])
    op.create_table(
        "output_drafts",
        sa.Column(
            "batch_id",
            sa.String(64),
            sa.ForeignKey("batches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("through_line", sa.Integer, nullable=False),
        sa.Column("carry", sa.LargeBinary, nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("output_drafts")
    for name, columns in _BEFORE.items():
        op.drop_index(name, table_name="requests")
        _index(name, columns)
