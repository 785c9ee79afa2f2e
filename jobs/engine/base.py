"""The contract between engines and whoever runs them (a Celery task, a script, a test)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol


class Cancelled(Exception):  # noqa: N818 - reads as a state, like StopIteration
    """Raised inside an engine when its reporter says the work was cancelled."""


class EngineError(Exception):
    """A failure whose message is fit to show to the person who started the work.

    ``code`` is machine-readable (``"empty_file"``, ``"cuda_oom"``), ``param`` names
    the input at fault when there is one, ``details`` carries row-level errors.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        param: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.details = details or []

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "details": self.details,
        }


class Reporter(Protocol):
    """What an engine tells the outside world while it runs.

    ``emit`` kinds used by engines: ``progress`` (``step``, ``total``, plus any of
    ``epoch``, ``loss``, ``learning_rate``, ``grad_norm``, ``samples_per_second``,
    ``tokens_per_second``, ``eta_seconds``, ``message``), ``metrics`` (a dict of eval
    metrics plus ``step``), ``log`` (``message``, ``level``), ``checkpoint``
    (``step``, ``path``).  ``should_stop`` is polled often (every optimizer step);
    when it answers True the engine stops cleanly and raises :class:`Cancelled`.
    """

    def emit(self, kind: str, **data: Any) -> None: ...

    def should_stop(self) -> bool: ...


class NullReporter:
    """Discards everything; never cancels. For scripts and benchmarks."""

    def emit(self, kind: str, **data: Any) -> None:
        return None

    def should_stop(self) -> bool:
        return False


class ListReporter:
    """Keeps every event in memory; tests read ``events`` and may set ``stop``.

    ``stop_when`` lets a test cancel at a chosen moment (e.g. after step 3).
    """

    def __init__(self, stop_when: Callable[[list[tuple[str, dict[str, Any]]]], bool] | None = None):
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.stop = threading.Event()
        self._stop_when = stop_when

    def emit(self, kind: str, **data: Any) -> None:
        self.events.append((kind, data))

    def should_stop(self) -> bool:
        if self._stop_when is not None and self._stop_when(self.events):
            self.stop.set()
        return self.stop.is_set()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k == kind]
