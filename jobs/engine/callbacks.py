"""Bridge from Hugging Face ``Trainer`` events to our :class:`~jobs.engine.base.Reporter`."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from transformers import TrainerCallback, TrainerState, TrainingArguments

from jobs.engine.base import Reporter


def _finite(value: Any) -> Any:
    """JSON (and so the browser) cannot carry NaN/inf: a diverged loss is sent as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Every step of a run's first steps is a point on the live chart, so a short job still
# draws a curve; after that, a point at most every LOG_INTERVAL seconds (and the last
# step, always): each log reads the loss back from the device and writes an event.
LOG_EVERY_STEP_UNTIL = 20
LOG_INTERVAL = 0.5


class ReporterCallback(TrainerCallback):
    """Streams ``progress`` events and polls for cancellation.

    It decides when the Trainer logs (``logging_strategy="no"`` leaves it to us): every
    step up to ``LOG_EVERY_STEP_UNTIL``, then by the clock, and always the last step. A
    logged loss is the Trainer's mean over the steps since the previous log. Throughput
    is measured between consecutive logs, so it is the current rate, not an average
    diluted by start-up and evaluation time. Tokens are real ones (attention-mask sum),
    counted by the collator and added up as batches are trained on (``tokens`` is the
    Trainer, with ``tokens_trained``; see ``TokenCountingCollator``).
    """

    def __init__(self, reporter: Reporter, *, samples_per_step: int, tokens: Any = None) -> None:
        self.reporter = reporter
        self.samples_per_step = samples_per_step
        self.tokens = tokens
        self.cancelled = False
        self.phase: str | None = None
        self._last_time: float | None = None
        self._last_step = 0
        self._last_tokens = 0
        self._start_time: float | None = None
        self._start_step = 0

    def begin_phase(self, name: str, total: int | None = None) -> None:
        """After the training loop: a named phase ("final evaluation") with its own
        progress, so the page shows what runs instead of an ETA stuck at 0 s."""
        self.phase, self._phase_total, self._phase_done = name, total, 0
        self._phase_last = time.monotonic()
        self.reporter.emit("phase", name=name, done=0, total=total)

    def on_prediction_step(self, args: TrainingArguments, state: TrainerState, control, **kw):
        if getattr(self, "phase", None) is None:
            return  # validation inside the training loop: the progress events cover it
        self._phase_done += 1
        now = time.monotonic()
        if now - self._phase_last >= 0.5 or self._phase_done == self._phase_total:
            self._phase_last = now
            self.reporter.emit(
                "phase", name=self.phase, done=self._phase_done, total=self._phase_total
            )

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control, **kw):
        # After a resume, global_step starts > 0: rates and ETA count from here.
        self._start_time = self._last_time = time.monotonic()
        self._start_step = self._last_step = state.global_step
        self._last_tokens = self._tokens_seen(state)

    def _tokens_seen(self, state: TrainerState) -> int:
        if self.tokens is not None:
            return int(self.tokens.tokens_trained)
        return int(state.num_input_tokens_seen or 0)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control, **kw):
        if self.reporter.should_stop():
            self.cancelled = True
            control.should_training_stop = True
            # Keep a checkpoint of where we stopped, so the work done is not lost.
            control.should_save = True
        step = state.global_step
        if (
            step - self._start_step <= LOG_EVERY_STEP_UNTIL
            or step >= state.max_steps
            or control.should_training_stop
            or control.should_evaluate  # the rate's clock restarts after an evaluation
            or time.monotonic() - (self._last_time or 0.0) >= LOG_INTERVAL
        ):
            control.should_log = True
        return control

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control, **kw):
        # An epoch-based run ends on its last epoch's end, which can fall short of
        # max_steps (rounding): the last step must still reach the chart.
        control.should_log = True
        return control

    def on_log(self, args: TrainingArguments, state: TrainerState, control, logs=None, **kw):
        logs = logs or {}
        if "loss" not in logs or "train_loss" in logs:
            return  # eval logs go through on_evaluate; the end summary is in TrainResult
        now = time.monotonic()
        step = state.global_step
        event: dict[str, Any] = {
            "step": step,
            "total": state.max_steps,
            "epoch": _finite(round(state.epoch, 4)) if state.epoch is not None else None,
            "loss": _finite(logs.get("loss")),
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": _finite(logs.get("grad_norm")),
        }
        elapsed = now - (self._last_time or now)
        steps = step - self._last_step
        seen = self._tokens_seen(state)
        if elapsed > 0 and steps > 0:
            tokens = seen - self._last_tokens
            event["samples_per_second"] = round(steps * self.samples_per_step / elapsed, 3)
            event["tokens_per_second"] = round(tokens / elapsed, 1)
        done = step - self._start_step
        if done > 0 and self._start_time is not None:
            per_step = (now - self._start_time) / done
            event["eta_seconds"] = round(max(0, state.max_steps - step) * per_step, 1)
        self._last_time, self._last_step = now, step
        self._last_tokens = seen
        self.reporter.emit("progress", **event)

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control, metrics=None, **kw
    ):
        metrics = {
            k.removeprefix("eval_"): _finite(v)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float | str)
        }
        self.reporter.emit("metrics", step=state.global_step, split="validation", **metrics)
        # Evaluation time is not training time: do not let it depress the next rate.
        self._last_time = time.monotonic()

    def on_save(self, args: TrainingArguments, state: TrainerState, control, **kw):
        # Relative to the job folder: events reach browsers, which must not see server paths.
        path = f"{os.path.basename(args.output_dir)}/checkpoint-{state.global_step}"
        self.reporter.emit("checkpoint", step=state.global_step, path=path)


class TimedCheckpointCallback(TrainerCallback):
    """Asks for a checkpoint when ``interval`` seconds passed since the last one.

    Step counts say nothing about time: 10% of a run is a minute on a GPU and an hour on a
    CPU. A clock bounds what a dead worker loses, whatever the speed.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = time.monotonic()

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control, **kw):
        self._last = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control, **kw):
        if time.monotonic() - self._last >= self.interval:
            control.should_save = True
        return control

    def on_save(self, args: TrainingArguments, state: TrainerState, control, **kw):
        self._last = time.monotonic()
