"""Demo content for a new installation; grows as datasets and models land.

Safe to run on every start: each part checks what exists before adding.
"""

from __future__ import annotations

from llmweb.accounts.models import Team


def seed_models(*, team, user, stdout=None) -> None:
    """The bundled encoder in every team, including teams made before it was bundled."""
    from jobs.engine.base import EngineError
    from llmweb.catalog.services.models import model_register_bundled

    try:
        for each in Team.objects.order_by("id"):
            model = model_register_bundled(team=each)
            if stdout is not None and each.pk == team.pk:
                stdout.write(f"Bundled model {model.name} v{model.version} is in {team.name}.")
    except EngineError as exc:
        if stdout is not None:
            stdout.write(f"No bundled model: {exc.message}")


def seed_demo(*, team, user, stdout=None) -> None:
    seed_models(team=team, user=user, stdout=stdout)
