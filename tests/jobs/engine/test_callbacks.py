"""Training events name files relative to the job, never by server path."""

from __future__ import annotations

from types import SimpleNamespace

from jobs.engine.callbacks import ReporterCallback


class ListReporter:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def emit(self, kind: str, **data) -> None:
        self.events.append((kind, data))


def test_checkpoint_events_carry_a_path_relative_to_the_job(tmp_path):
    reporter = ListReporter()
    callback = ReporterCallback(reporter, samples_per_step=1)
    args = SimpleNamespace(output_dir=str(tmp_path / "teams" / "1" / "jobs" / "7" / "checkpoints"))
    callback.on_save(args, SimpleNamespace(global_step=40), None)
    assert reporter.events == [("checkpoint", {"step": 40, "path": "checkpoints/checkpoint-40"})]
    assert str(tmp_path) not in str(reporter.events)
