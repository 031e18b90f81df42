"""batches.request_id: the id of the HTTP request that created the batch, for its log lines

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable ADD COLUMN: no table is rebuilt.
    op.add_column("batches", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("batches", "request_id")
