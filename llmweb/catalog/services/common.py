"""Pieces every catalog service shares: the write check, versions and the upload limit.

Refusals are ``llmweb.core.errors`` domain errors: the API maps them to responses in one
place and pages show them beside the field they name.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Max

from llmweb.accounts.models import Team
from llmweb.accounts.selectors import can_write
from llmweb.core.errors import DomainError


class Versioned(Protocol):
    """A team-scoped record with ``(team, name, version)`` unique and its own storage folder."""

    objects: Any

    def delete_files(self) -> None: ...


R = TypeVar("R", bound=Versioned)


class UploadTooLarge(DomainError):
    """The upload is over ``LLMWEB_MAX_UPLOAD_BYTES`` (HTTP 413)."""

    http_status = 413

    def __init__(self, size: int, limit: int, *, what: str = "The file", advice: str = "") -> None:
        super().__init__(
            f"{what} is {size / (1 << 20):,.1f} MiB; the limit is {limit / (1 << 20):,.0f} MiB "
            f"(setting LLMWEB_MAX_UPLOAD_BYTES).{advice}",
            code="file_too_large",
            param="file",
        )


def require_write(*, user, team: Team, action: str) -> None:
    """Viewers read; ``action`` finishes the sentence, e.g. "upload or delete datasets"."""
    if not can_write(user=user, team=team):
        raise PermissionDenied(
            f"Your role in {team.name} is read-only; ask an owner to make you a member to {action}."
        )


def create_versioned(record_class: type[R], *, team: Team, name: str, **fields: Any) -> R:
    """Create ``name`` at the next free version of this team (v1, v2, ...).

    The insert runs in a savepoint, so a caller's open transaction survives a lost race
    and the next version is tried. A new id owns no files; anything in its folder was
    left by a rolled-back transaction, so it is cleared.
    """
    for _ in range(5):
        try:
            with transaction.atomic():
                top = record_class.objects.filter(team=team, name=name).aggregate(v=Max("version"))[
                    "v"
                ]
                record = record_class.objects.create(
                    team=team, name=name, version=(top or 0) + 1, **fields
                )
        except IntegrityError:
            continue  # another writer took that version a moment ago
        record.delete_files()
        return record
    raise DomainError(
        f"Could not allocate a version for {name!r}; try again.", code="busy", param="name"
    )


def delete_finished_jobs(*, user, jobs: list[Any], conflict: type[DomainError]) -> None:
    """Delete jobs that used a catalog record the person is deleting with them.

    Only finished jobs: a queued or running one must be cancelled first (checked for all
    before any is deleted). Each goes through the job system's ``job_delete`` (events and
    work folder too; the model it made stays, its ``job`` link emptied).
    """
    from jobs.models import FINISHED
    from jobs.services import job_delete

    running = [j for j in jobs if j.status not in FINISHED]
    if running:
        ids = ", ".join(f"#{j.pk} ({j.status})" for j in running[:10])
        raise conflict(
            f"Job {ids} has not finished; cancel it or wait, then delete.", code="job_active"
        )
    for job in jobs:
        job_delete(user=user, job=job)
