"""Pure ML library: data parsing, model loading, training, generation, evaluation.

Nothing in this package imports Django, DRF, Channels, Celery or the job system: a
worker, a script or a notebook can call it directly. The import-linter contract
``engine-is-a-library`` (pyproject.toml, run by tests/test_architecture.py) keeps it so.
"""
