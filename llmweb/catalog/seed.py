"""Demo content for a new installation; grows as datasets and models land.

Safe to run on every start: each part checks what exists before adding.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.files import File

from jobs.engine.base import EngineError
from llmweb.accounts.models import Team
from llmweb.catalog.models import Dataset
from llmweb.catalog.services.datasets import dataset_upload_create
from llmweb.catalog.services.models import model_register_bundled


def seed_models(*, team, user, stdout=None) -> None:
    """The bundled encoder in every team, including teams made before it was bundled."""
    try:
        for each in Team.objects.order_by("id"):
            model = model_register_bundled(team=each)
            if stdout is not None and each.pk == team.pk:
                stdout.write(f"Bundled model {model.name} v{model.version} is in {team.name}.")
    except EngineError as exc:
        if stdout is not None:
            stdout.write(f"No bundled model: {exc.message}")


SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

# (file in the sample data folder, dataset name, upload options)
DEMO_DATASETS = [
    ("SMSSpamCollection.tsv", "SMS spam", {"schema": "classification"}),
    ("fra_eng_tatoeba_sample5k.tsv", "English-French (Tatoeba 5k)", {"schema": "seq2seq"}),
    ("tinyshakespeare.txt", "Tiny Shakespeare", {"schema": "causal-lm", "txt_mode": "corpus"}),
]


def seed_datasets(*, team, user, stdout=None) -> None:
    """Upload the shared sample files into ``team`` through the normal service.

    Processing is queued, so the run command stays quick; the worker picks them up.
    The files ship inside the package (``catalog/samples/``, licenses in its README);
    LLMWEB_SAMPLE_DATA points elsewhere. A name that exists is not seeded again.
    """
    folder = Path(os.environ.get("LLMWEB_SAMPLE_DATA") or SAMPLES_DIR)
    for filename, name, options in DEMO_DATASETS:
        path = folder / filename
        if Dataset.objects.filter(team=team, name=name).exists():
            continue
        if not path.is_file():
            # Say so: a demo team without its samples looked like a broken install.
            if stdout is not None:
                stdout.write(f"Sample file {filename} is missing from {folder}; {name} not seeded.")
            continue
        with open(path, "rb") as f:
            ds = dataset_upload_create(
                user=user, team=team, name=name, uploaded_file=File(f, name=filename), **options
            )
        if stdout is not None:
            stdout.write(f"Dataset {ds} queued for processing in {team.name}.")


def seed_demo(*, team, user, stdout=None) -> None:
    seed_models(team=team, user=user, stdout=stdout)
    seed_datasets(team=team, user=user, stdout=stdout)
