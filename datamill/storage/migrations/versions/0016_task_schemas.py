"""task_schemas: a project's task schemas, every version kept; datasets.task_schema: the
schema of samples whose sample_type names none

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_Id64 = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    # A new table and a nullable column: nothing existing is rewritten.
    op.create_table(
        "task_schemas",
        sa.Column("seq", _Id64, autoincrement=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("deleted_at", sa.Float, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_task_schemas_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_task_schemas")),
        sa.UniqueConstraint(
            "project_id", "name", "version", name=op.f("uq_task_schemas_project_id_name_version")
        ),
    )
    op.add_column("datasets", sa.Column("task_schema", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("task_schema")
    op.drop_table("task_schemas")
