"""API keys, roles and projects: api_keys, unique project names, the key behind batches
and gateway calls, the project of events

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("last_used_at", sa.Float, nullable=True),
        sa.Column("requests_per_minute", sa.Integer, nullable=True),
        sa.Column("spend_per_day", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_api_keys_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("sha256", name=op.f("uq_api_keys_sha256")),
    )
    op.create_index(
        op.f("ix_api_keys_project_id_created_at"), "api_keys", ["project_id", "created_at"]
    )
    op.create_index(op.f("ix_projects_name"), "projects", ["name"], unique=True)
    for name in ("batches", "gateway_calls"):
        op.add_column(name, sa.Column("key_id", sa.String(64), nullable=True))
        op.create_index(op.f(f"ix_{name}_key_id_created_at"), name, ["key_id", "created_at"])
    op.add_column("events", sa.Column("project_id", sa.String(64), nullable=True))
    # Events written before keys existed are the default project's (or shared ones).
    op.execute(
        "UPDATE events SET project_id = (SELECT project_id FROM batches "
        "WHERE batches.id = events.batch_id) WHERE batch_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("events", "project_id")
    for name in ("batches", "gateway_calls"):
        op.drop_index(op.f(f"ix_{name}_key_id_created_at"), name)
        op.drop_column(name, "key_id")
    op.drop_index(op.f("ix_projects_name"), "projects")
    op.drop_table("api_keys")
