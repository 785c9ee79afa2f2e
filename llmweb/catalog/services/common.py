"""Pieces every catalog service shares: the write check and the 409 exception."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from llmweb.accounts.models import Team
from llmweb.accounts.selectors import can_write


class CatalogConflict(Exception):
    """Valid request, but the record's state forbids it now (the API answers 409)."""

    def __init__(self, message: str, *, code: str = "conflict") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def require_write(*, user, team: Team, action: str) -> None:
    """Viewers read; ``action`` finishes the sentence, e.g. "upload or delete datasets"."""
    if not can_write(user=user, team=team):
        raise PermissionDenied(
            f"Your role in {team.name} is read-only; ask an owner to make you a member to {action}."
        )
