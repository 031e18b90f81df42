"""compress blob chunks with lz4 on PostgreSQL

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from datamill.storage.schema import POSTGRES_BLOB_COMPRESSION

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Chunks written from now on use it; existing ones stay as they are, and readable.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_BLOB_COMPRESSION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET COMPRESSION default")
