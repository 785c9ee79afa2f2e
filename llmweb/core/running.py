"""One wrapper for engine work inside a task: jobs, dataset processing, model arrival.

It maps how an engine call ended to what the record should say: ``Cancelled`` (the person
or a delete stopped it), ``EngineError`` (a message fit for the person), anything else
(our bug: a generic message for the person, the traceback for admins and the log).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.engine.base import Cancelled, EngineError
from llmweb.core.errors import DomainError

log = logging.getLogger(__name__)


@dataclass
class Ran:
    """How the call ended: ``succeeded`` (with ``value``), ``cancelled`` or ``failed``."""

    state: str
    value: Any = None


def internal_error(exc: BaseException, what: str) -> dict[str, Any]:
    return {
        "code": "internal_error",
        "message": f"{what} stopped on an internal error ({exc.__class__.__name__}). "
        "An admin can read the traceback.",
    }


def run_guarded(
    call: Callable[[], Any],
    *,
    what: str,
    on_failed: Callable[[dict[str, Any], str], None],
    on_cancelled: Callable[[], None] | None = None,
) -> Ran:
    """Run ``call``; on failure call ``on_failed(error, traceback)`` and say how it ended.

    ``what`` names the work in messages ("The job", "Processing"). The traceback string is
    empty for ``EngineError``s: their message is the whole story.
    """
    try:
        return Ran("succeeded", call())
    except Cancelled:
        if on_cancelled is not None:
            on_cancelled()
        return Ran("cancelled")
    except (EngineError, DomainError) as exc:
        log.info("%s refused: %s", what, exc.message)
        on_failed(exc.as_dict(), "")
        return Ran("failed")
    except Exception as exc:  # noqa: BLE001 - anything else is our bug; keep the traceback
        log.exception("%s crashed", what)
        on_failed(internal_error(exc, what), traceback.format_exc())
        return Ran("failed")
