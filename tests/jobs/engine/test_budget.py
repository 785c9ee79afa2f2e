"""Training to a time budget: the step arithmetic, the schedule stretch, the config rules."""

from __future__ import annotations

import math

import pytest
import torch
from transformers.optimization import get_scheduler

from jobs.engine.base import EngineError
from jobs.engine.budget import plan_total_steps, reserve_seconds, retarget_schedule
from jobs.engine.finetune import TrainConfig


def test_the_plan_is_what_fits_after_the_reserve():
    # 60 s left, 10 s kept for evaluation and save, 4 steps/s: 200 more steps.
    assert plan_total_steps(done=7, seconds_left=60, steps_per_second=4, reserve=10) == 207


def test_a_spent_budget_stops_at_the_current_step():
    assert plan_total_steps(done=30, seconds_left=5, steps_per_second=4, reserve=10) == 30
    assert plan_total_steps(done=30, seconds_left=60, steps_per_second=0, reserve=1) == 30


def test_evaluations_inside_the_loop_take_their_share_of_the_time():
    # 100 s usable at 10 steps/s is 1000 steps without evaluations. One evaluation of 5 s
    # every 100 steps: n steps cost n/10 + 5 * (n // 100); 699 fit (99.9 s), 700 would not
    # (a seventh evaluation: 105 s).
    total = plan_total_steps(
        done=0, seconds_left=100, steps_per_second=10, reserve=0, pause_seconds=5, pause_every=100
    )
    cost = lambda n: n / 10 + 5 * (n // 100)  # noqa: E731
    assert cost(total) <= 100 < cost(total + 1)
    assert total == 699


def test_the_reserve_counts_evaluation_rows_and_the_save():
    # Measured: 0.01 s a row -> 2 s for 200 rows, + 1 s fixed + 300 MB at 150 MB/s = 5 s.
    assert reserve_seconds(
        eval_rows=200, train_rows_per_second=50, eval_seconds_per_row=0.01, model_bytes=300_000_000
    ) == pytest.approx(5.0)
    # Not measured yet: half the training cost of a row.
    assert reserve_seconds(eval_rows=100, train_rows_per_second=50) == pytest.approx(1.0 + 1.0)


@pytest.mark.parametrize("name", ["linear", "cosine", "polynomial"])
def test_a_stretched_schedule_ends_at_zero_on_the_new_total(name):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=0, num_training_steps=1000)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    retarget_schedule(scheduler, 20, warmup=0.0)
    # Continues from step 5 on the 20-step schedule, effective at once.
    assert optimizer.param_groups[0]["lr"] == pytest.approx(scheduler.lr_lambdas[0](5))
    for _ in range(15):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] < 1e-6


def test_a_warmup_ratio_is_a_share_of_the_new_total():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1.0)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=100, num_training_steps=1000)
    retarget_schedule(scheduler, 40, warmup=0.1)
    assert scheduler.lr_lambdas[0].keywords["num_warmup_steps"] == math.ceil(0.1 * 40)


def _config(tmp_path, **params):
    return TrainConfig.from_params(
        params,
        job_type="finetune",
        task="classification",
        model_dir=tmp_path,
        data_dir=tmp_path,
        output_dir=tmp_path,
        checkpoint_dir=tmp_path,
    )


def test_max_minutes_is_bounded_and_excludes_max_steps(tmp_path):
    assert _config(tmp_path, max_minutes="1.5").max_minutes == 1.5
    assert _config(tmp_path).max_minutes is None
    with pytest.raises(EngineError) as low:
        _config(tmp_path, max_minutes=0.01)
    assert low.value.param == "max_minutes"
    with pytest.raises(EngineError) as both:
        _config(tmp_path, max_minutes=2, max_steps=100)
    assert both.value.param == "max_minutes" and "max_steps" in str(both.value)


def test_a_spent_budget_still_plans_one_more_step_on_a_refitted_schedule():
    import time

    from transformers import TrainerState

    from jobs.engine.budget import TimeBudgetCallback

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = get_scheduler("linear", opt, num_warmup_steps=0, num_training_steps=1000)
    for _ in range(40):
        opt.step()
        sched.step()
    now = time.monotonic()
    cb = TimeBudgetCallback(
        deadline=now + 1,
        budget_seconds=60,
        warmup=0,
        eval_rows=0,
        samples_per_step=8,
        model_bytes=0,
    )
    state = TrainerState()
    state.global_step = 40
    cb._plan(state, sched, now, rate=1.0)  # one second left, a reserve of more: spent
    assert cb.planned == state.max_steps == 41
    # The next (last) step runs on the schedule's last rate: one step's worth of the peak.
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 41)


def test_a_budgeted_loop_does_not_evaluate_at_its_last_step():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from jobs.engine.budget import FinalEvaluationFollows

    cb, args = FinalEvaluationFollows(), TrainingArguments(output_dir="unused", report_to="none")
    state = TrainerState()
    state.global_step, state.max_steps = 10, 50
    middle = cb.on_step_end(args, state, TrainerControl(should_evaluate=True))
    assert middle.should_evaluate  # an evaluation inside the run is kept
    state.global_step = 50
    assert not cb.on_step_end(args, state, TrainerControl(should_evaluate=True)).should_evaluate
    stop = TrainerControl(should_evaluate=True, should_training_stop=True)
    state.global_step = 30  # the clock stopped it early: its epoch end does not evaluate
    assert not cb.on_epoch_end(args, state, stop).should_evaluate
