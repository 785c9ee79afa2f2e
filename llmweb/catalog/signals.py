"""Every team, from the moment it exists, can use the bundled encoder."""

from __future__ import annotations

import logging

from django.db.models.signals import post_save
from django.dispatch import receiver

from jobs.engine.base import EngineError
from llmweb.accounts.models import Team
from llmweb.catalog.services.models import model_register_bundled

log = logging.getLogger(__name__)


@receiver(post_save, sender=Team, dispatch_uid="catalog.register_bundled_model")
def register_bundled_model(
    sender, instance: Team, created: bool, raw: bool = False, **kwargs
) -> None:
    if not created or raw:  # raw: loaddata replays rows; the fixture holds the models too
        return
    try:
        model_register_bundled(team=instance)
    except EngineError as exc:
        # A deployment without the package still works; only the bundled model is missing.
        log.warning("team %s has no bundled model: %s", instance.pk, exc.message)
