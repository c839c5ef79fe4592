"""Baseline: the schema of gptbuilder 0.1 (conversations, messages, feedback, ratings, usage, widget keys).

Revision ID: 0001
Revises:
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to do: databases at the baseline were created whole from the models."""


def downgrade() -> None:
    """The baseline is the floor."""
