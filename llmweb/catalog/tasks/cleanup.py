"""Periodic cleanup of what a crash left behind: lost tasks, half-written uploads, staging."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from celery import shared_task
from django.conf import settings

from jobs.models import Job
from llmweb.catalog.models import Dataset, RegisteredModel

log = logging.getLogger(__name__)

__all__ = ["clean_orphans_task", "reap_lost_catalog_work_task"]


@shared_task(name="llmweb.catalog.tasks.clean_orphans")
def clean_orphans_task(max_age_seconds: int = 3600) -> list[str]:
    """Remove storage folders that no record owns, and stale dot-prefixed staging folders."""
    root = Path(settings.STORAGE_DIR) / "teams"
    removed: list[str] = []
    if not root.exists():
        return removed
    owners = {
        "datasets": set(Dataset.objects.values_list("pk", flat=True)),
        "models": set(RegisteredModel.objects.values_list("pk", flat=True)),
        "jobs": set(Job.objects.values_list("pk", flat=True)),
    }
    now = time.time()
    for team_dir in root.iterdir():
        for kind, ids in owners.items():
            kind_dir = team_dir / kind
            if not kind_dir.is_dir():
                continue
            for entry in kind_dir.iterdir():
                old = now - entry.stat().st_mtime > max_age_seconds
                orphan = entry.name.isdigit() and int(entry.name) not in ids
                staging = entry.name.startswith(".")
                if old and (orphan or staging):
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(
                        missing_ok=True
                    )
                    removed.append(str(entry.relative_to(root)))
    if removed:
        log.info("removed %d orphaned storage entries", len(removed))
    return removed


@shared_task(name="llmweb.catalog.tasks.reap_lost_work")
def reap_lost_catalog_work_task() -> dict[str, list[int]]:
    """Requeue datasets and model arrivals whose task was lost (llmweb/catalog/services/liveness.py)."""
    from llmweb.catalog.services.liveness import catalog_requeue_lost

    return catalog_requeue_lost()
