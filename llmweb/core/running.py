"""One wrapper for engine work inside a task: jobs, dataset processing, model arrival.

It maps how an engine call ended to what the record should say: ``Cancelled`` (the person
or a delete stopped it), ``EngineError`` (a message fit for the person), anything else
(our bug: a generic message for the person, the traceback for admins and the log), except
a full disk or a file-size/quota limit, which is the machine's state, not our bug, and is
named as such (``disk_full``) wherever in the call it happened.
"""

from __future__ import annotations

import errno
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


# ENOSPC: the filesystem is full; EFBIG: a file passed the process's size limit
# (RLIMIT_FSIZE); EDQUOT: the user's quota. To the person all three are "the disk is full".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
# Writers in Rust or C++ (safetensors, some Arrow paths) flatten the OSError into text.
DISK_FULL_TEXTS = (
    "no space left on device",
    "file too large",
    "disk quota exceeded",
    *(f"os error {code})" for code in sorted(DISK_FULL_ERRNOS)),
)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk (or quota) is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in DISK_FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(what: str) -> dict[str, Any]:
    return {
        "code": "disk_full",
        "message": f"{what} stopped: the disk is full (no space left, or a file-size or quota "
        "limit was reached) while writing. Nothing half-written was kept; free space and "
        "try again.",
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
        if is_disk_full(exc):
            log.error("%s: disk full: %s", what, exc)
            on_failed(disk_full_error(what), traceback.format_exc())
            return Ran("failed")
        log.exception("%s crashed", what)
        on_failed(internal_error(exc, what), traceback.format_exc())
        return Ran("failed")
