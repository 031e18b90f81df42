"""the event stream: events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        # Ids are never reused, even once the newest events are pruned (SQLite would reuse
        # the highest rowid without AUTOINCREMENT); clients resume from them.
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_events_batch_id_id"), "events", ["batch_id", "id"])
    op.create_index(op.f("ix_events_topic_id"), "events", ["topic", "id"])
    op.create_index(op.f("ix_events_created_at"), "events", ["created_at"])


def downgrade() -> None:
    op.drop_table("events")
