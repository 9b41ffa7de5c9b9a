"""Failed sign-ins per username and source in the database, so every worker shares one count.

Revision ID: 0002_login_throttle
Revises: 0001_initial
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_login_throttle"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("username_key", sa.String(150), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start_s", sa.Float(), nullable=False),
        sa.Column("locked_until_s", sa.Float(), nullable=False),
        sa.Column("expires_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("username_key", "source", name="pk_login_throttle"),
    )
    op.create_index("ix_login_throttle_expires_s", "login_throttle", ["expires_s"])


def downgrade() -> None:
    op.drop_index("ix_login_throttle_expires_s", table_name="login_throttle")
    op.drop_table("login_throttle")
