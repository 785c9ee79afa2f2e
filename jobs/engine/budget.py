"""Training to a time budget: choose the step count from measured speed, then end on time.

People on a shared queue think in minutes, not epochs. A run with ``max_minutes`` times
its first optimizer steps, then sets the step count so that training, the evaluations it
will still run, the final evaluation and the save all fit in the budget, and stretches the
learning-rate schedule over exactly that many steps: the run ends with its schedule
finished (a linear decay reaches zero), not cut in the middle of it. A safety check stops
training if the clock reaches the deadline anyway (a slower machine, another job sharing
the CPU).

The arithmetic is in pure functions (:func:`plan_total_steps`, :func:`reserve_seconds`),
so it is tested without a Trainer; :class:`TimeBudgetCallback` applies it to one.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

# The first step pays one-off costs (allocator warm-up, lazy init): it is not timed.
WARMUP_STEPS = 3
# Timed steps cover at least this share of the budget (and 1 s) before the first plan.
WARMUP_SHARE = 0.03
# Re-plan at most this often (share of the budget): the machine's load changes.
REPLAN_SHARE = 0.05
# The speed used is measured over this share of the budget, the latest steps.
RECENT_SHARE = 0.15
# After this share of the planned steps a re-plan may only shorten the run.
FROZEN_AFTER = 0.85
# The safety stop waits for this share of the budget past the plan's end (target: 5%).
GRACE_SHARE = 0.02
# Forward only vs forward + backward + optimizer step: evaluation of a row costs about a
# third of training on it; half leaves room for metrics and the data loader.
EVAL_COST_PER_TRAIN_ROW = 0.5
# Writing weights and tokenizer; disks vary, so take a slow one.
SAVE_BYTES_PER_SECOND = 150e6
SAVE_FIXED_SECONDS = 1.0
# A planned-run upper bound: the Trainer needs some max_steps to size its epoch loop.
STEP_CEILING = 10_000_000


def reserve_seconds(
    *,
    eval_rows: int,
    train_rows_per_second: float,
    eval_seconds_per_row: float | None = None,
    model_bytes: int = 0,
    generation_seconds: float = 0.0,
) -> float:
    """Seconds to keep free after training: the final evaluation plus the save.

    ``eval_seconds_per_row`` is measured when an evaluation ran during training; before
    that it is derived from the training speed (see ``EVAL_COST_PER_TRAIN_ROW``).
    """
    if eval_seconds_per_row is None:
        eval_seconds_per_row = EVAL_COST_PER_TRAIN_ROW / max(train_rows_per_second, 1e-9)
    save = SAVE_FIXED_SECONDS + model_bytes / SAVE_BYTES_PER_SECOND
    return eval_rows * eval_seconds_per_row + generation_seconds + save


def plan_total_steps(
    *,
    done: int,
    seconds_left: float,
    steps_per_second: float,
    reserve: float,
    pause_seconds: float = 0.0,
    pause_every: int | None = None,
) -> int:
    """The optimizer step at which training should end: ``done`` plus what still fits.

    ``max_steps = done + floor((seconds_left - reserve) x steps/s)``, less the steps whose
    time goes to evaluations inside the loop (one of ``pause_seconds`` every
    ``pause_every`` steps). Never below ``done``: a budget already spent stops at once.
    """
    if steps_per_second <= 0:
        return done
    usable = seconds_left - reserve

    def cost(extra: int) -> float:
        pauses = 0
        if pause_every and pause_seconds > 0:
            pauses = (done + extra) // pause_every - done // pause_every
        return extra / steps_per_second + pauses * pause_seconds

    # The cost only grows with the step count: the largest count that fits, by bisection.
    low, high = 0, max(0, math.floor(usable * steps_per_second))
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= usable:
            low = mid
        else:
            high = mid - 1
    return done + low


def retarget_schedule(lr_scheduler: Any, total: int, warmup: float) -> None:
    """Stretch a Hugging Face schedule (a ``LambdaLR`` of partials) to ``total`` steps.

    The lambda is a function of the current step, so the learning rate continues from
    where it is; ``warmup`` is a step count, or a ratio of ``total`` when below 1 (the
    Trainer's own rule).
    """
    warmup_steps = math.ceil(warmup * total) if 0 < warmup < 1 else int(warmup)
    lambdas = getattr(lr_scheduler, "lr_lambdas", None)
    if not lambdas:
        return
    retargeted = []
    for fn in lambdas:
        keywords = dict(getattr(fn, "keywords", None) or {})
        if isinstance(fn, functools.partial) and keywords:
            if "num_training_steps" in keywords:
                keywords["num_training_steps"] = total
            if "num_warmup_steps" in keywords:
                keywords["num_warmup_steps"] = warmup_steps
            fn = functools.partial(fn.func, *fn.args, **keywords)
        retargeted.append(fn)
    lr_scheduler.lr_lambdas = retargeted
    # The rate for the next step was set by the old schedule: apply the new one now.
    optimizer = getattr(lr_scheduler, "optimizer", None)
    if optimizer is not None:
        step = lr_scheduler.last_epoch
        for group, base, fn in zip(
            optimizer.param_groups, lr_scheduler.base_lrs, retargeted, strict=False
        ):
            group["lr"] = base * fn(step)
        lr_scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


class TimeBudgetCallback(TrainerCallback):
    """Plans the step count of a ``max_minutes`` run and stops it by the deadline.

    Must run before ``DefaultFlowCallback`` (it changes ``state.max_steps``, which that
    callback compares with the step); ``build_trainer`` puts it first.
    """

    def __init__(
        self,
        *,
        deadline: float,
        budget_seconds: float,
        warmup: float,
        eval_rows: int,
        samples_per_step: int,
        model_bytes: int,
        eval_every: int | None = None,
        validation_rows: int = 0,
        generation_rows: int = 0,
        hint_samples_per_second: float | None = None,
        log: Any = None,
    ) -> None:
        self.deadline = deadline
        self.budget = budget_seconds
        self.warmup = warmup
        self.eval_rows = eval_rows
        self.samples_per_step = samples_per_step
        self.model_bytes = model_bytes
        self.eval_every = eval_every
        self.validation_rows = validation_rows
        self.generation_rows = generation_rows
        self.hint = hint_samples_per_second
        self.log = log or (lambda message: None)
        self.planned: int | None = None
        self.stopped_by_clock = False
        self._first_time: float | None = None
        self._first_step = 0
        self._paused = 0.0  # seconds since the first timed step spent outside training steps
        self._marks: list[tuple[int, float]] = []  # (step, training seconds) in the window
        self._eval_seconds: list[float] = []
        self._last_step_end = 0.0
        self._last_plan = 0.0

    # -- the figures the plan uses ---------------------------------------------------------

    def steps_per_second(self, now: float, step: int) -> float | None:
        """Steps per second of training time (evaluations and saves left out): over the
        last ``RECENT_SHARE`` of the budget once there is one, as the machine's load moves."""
        if self._first_time is None or step - self._first_step < WARMUP_STEPS - 1:
            return None
        busy = now - self._first_time - self._paused
        if busy <= 0:
            return None
        self._marks.append((step, busy))
        window = max(1.0, RECENT_SHARE * self.budget)
        while len(self._marks) > 2 and busy - self._marks[1][1] >= window:
            self._marks.pop(0)
        first_step, first_busy = self._marks[0]
        if busy - first_busy >= window / 2 and step > first_step:
            return (step - first_step) / (busy - first_busy)
        return (step - self._first_step) / busy

    def reserve(self, steps_per_second: float) -> float:
        rows_per_second = steps_per_second * self.samples_per_step
        per_row = None
        if self._eval_seconds and self.validation_rows:
            per_row = self._eval_seconds[-1] / self.validation_rows
        eval_cost = per_row or EVAL_COST_PER_TRAIN_ROW / max(rows_per_second, 1e-9)
        # Greedy generation of a sample (seq2seq): each row decodes up to max_length tokens
        # one forward at a time; count it as ten evaluations of that row.
        generation = self.generation_rows * eval_cost * 10
        return reserve_seconds(
            eval_rows=self.eval_rows,
            train_rows_per_second=rows_per_second,
            eval_seconds_per_row=per_row,
            model_bytes=self.model_bytes,
            generation_seconds=generation,
        )

    def _plan(
        self,
        state: TrainerState,
        lr_scheduler: Any,
        now: float,
        rate: float,
        *,
        shrink_only: bool = False,
    ) -> None:
        # The latest evaluation: the first one also pays one-off set-up.
        pause = self._eval_seconds[-1] if self._eval_seconds else 0.0
        if not pause and self.eval_every:
            rows = self.validation_rows * EVAL_COST_PER_TRAIN_ROW
            pause = rows / (rate * self.samples_per_step)
        total = plan_total_steps(
            done=state.global_step,
            seconds_left=self.deadline - now,
            steps_per_second=rate,
            reserve=self.reserve(rate),
            pause_seconds=pause,
            pause_every=self.eval_every,
        )
        first = self.planned is None
        if shrink_only and total >= (self.planned or 0):
            self._last_plan = now
            return
        if first or abs(total - (self.planned or 0)) > max(1, 0.01 * (self.planned or 0)):
            # Never below the next step: the run then ends with one more step, on a
            # schedule refitted to end there, not at a step already taken.
            self.planned = max(total, state.global_step + 1)
            state.max_steps = self.planned
            retarget_schedule(lr_scheduler, state.max_steps, self.warmup)
        if first:
            self.log(
                f"time budget: {rate:.2f} steps/s measured, planning {self.planned} steps "
                f"to end within {self.budget / 60:g} min"
            )
        self._last_plan = now

    # -- Trainer hooks ---------------------------------------------------------------------

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control, **kw):
        provisional = STEP_CEILING
        if self.hint:
            # A similar job's measured speed shapes the schedule of the untimed first steps.
            rate = self.hint / self.samples_per_step
            provisional = plan_total_steps(
                done=state.global_step,
                seconds_left=self.deadline - time.monotonic(),
                steps_per_second=rate,
                reserve=self.reserve(rate),
            )
        state.max_steps = max(provisional, state.global_step + WARMUP_STEPS + 1)
        retarget_schedule(kw.get("lr_scheduler"), state.max_steps, self.warmup)
        self._last_step_end = time.monotonic()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw
    ):
        now = time.monotonic()
        step = state.global_step
        self._last_step_end = now
        if self._first_time is None:
            self._first_time, self._first_step = now, step
            return control
        rate = self.steps_per_second(now, step)
        if rate is not None:
            timed_long_enough = now - self._first_time >= max(1.0, WARMUP_SHARE * self.budget)
            if self.planned is None:
                if timed_long_enough or now + self.reserve(rate) >= self.deadline:
                    self._plan(state, kw.get("lr_scheduler"), now, rate)
            elif now - self._last_plan >= REPLAN_SHARE * self.budget:
                # Near the end only a shorter plan is taken: the schedule then ends sooner
                # but still ends, where a longer one would only give the safety stop work.
                self._plan(
                    state,
                    kw.get("lr_scheduler"),
                    now,
                    rate,
                    shrink_only=step >= FROZEN_AFTER * self.planned,
                )
        if self.planned is None and step >= state.max_steps - 1:
            state.max_steps = step + 2  # not timed yet: keep going until it is
        # The safety net: whatever the plan said, the final evaluation and save must fit.
        # A grace of a few percent lets a plan that runs a step late finish its schedule.
        # It looks one step ahead: a step that would end past that point is not started.
        late = -1.0
        if rate is not None:
            late = now + 1 / rate + self.reserve(rate) - self.deadline
        if late >= GRACE_SHARE * self.budget and step < state.max_steps:
            self.stopped_by_clock = True
            control.should_training_stop = True
            self.log(f"time budget: the clock ran out at step {step} of {state.max_steps}")
        return control

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control, **kw):
        # Evaluation inside the loop runs after on_step_end; its time is not step time.
        now = time.monotonic()
        spent = now - self._last_step_end
        self._eval_seconds.append(spent)
        self._paused += spent
        self._last_step_end = now

    def on_save(self, args: TrainingArguments, state: TrainerState, control, **kw):
        now = time.monotonic()
        self._paused += now - self._last_step_end
        self._last_step_end = now


class FinalEvaluationFollows(TrainerCallback):
    """Last in line: a budgeted run's loop does not evaluate at its last step.

    The final evaluation runs right after training anyway, and the Trainer's own
    evaluation at a stop (its epoch-end one, or a step one that lands on the end) is not
    in the plan: on a one-minute budget it cost a third of the time again (1.37 x budget).
    """

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control, **kw):
        if control.should_training_stop or state.global_step >= state.max_steps:
            control.should_evaluate = False
        return control

    on_epoch_end = on_step_end
