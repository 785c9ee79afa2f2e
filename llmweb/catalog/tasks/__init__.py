"""Celery tasks of the catalog: dataset processing, model validation, cleanup."""

from llmweb.catalog.tasks.cleaning import *  # noqa: F403
from llmweb.catalog.tasks.cleanup import *  # noqa: F403
from llmweb.catalog.tasks.datasets import *  # noqa: F403
from llmweb.catalog.tasks.models import *  # noqa: F403
