"""Enqueue-on-commit: the one allowed late import of a task module.

A task is sent only after the transaction that created its record commits (a worker must
never look for a row that is not there yet), and a broker that cannot be reached fails
the record at once instead of leaving it "queued" forever.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)


def enqueue_on_commit(
    task_path: str,
    *args: Any,
    on_error: Callable[[Exception], None],
    **options: Any,
) -> None:
    """After commit, send ``module.path:task`` with ``args`` and ``apply_async`` options.

    ``task_path`` is a string so that services never import task modules (tasks import
    services; the reverse would be a circle).
    """

    def send() -> None:
        module_name, _, attr = task_path.partition(":")
        try:
            task = getattr(importlib.import_module(module_name), attr)
            task.apply_async(args=list(args), **options)
        except Exception as exc:  # noqa: BLE001 - the broker is down; say so instead of hanging
            log.exception("could not enqueue %s%r", task_path, args)
            on_error(exc)

    transaction.on_commit(send)
