"""Distillation engine: the KD loss, layer selection, students, the cached teacher logits."""

from __future__ import annotations

import pytest
import torch

from jobs.engine.base import EngineError, ListReporter
from jobs.engine.distill import DistillConfig, hidden_cosine_loss, kd_kl_loss, run_distill
from jobs.engine.models import load_for_task
from jobs.engine.students import every_other_layer, half_layers_student, teacher_key_for
from tests.factories import sms_rows, tiny_model_folder

TEXTS = [r["text"] for r in sms_rows(60)]


def test_kd_kl_loss_matches_a_hand_computed_value():
    student = torch.tensor([[1.0, 0.0]])
    teacher = torch.tensor([[0.0, 1.0]])
    labels = torch.tensor([0])
    # T=1: p_t = (0.26894, 0.73106), p_s reversed. KL = (0.73106 - 0.26894) * ln(e) =
    # 0.46212; CE = -ln 0.73106 = 0.31326; 0.5 * 0.46212 + 0.5 * 0.31326 = 0.38769.
    loss = kd_kl_loss(student, teacher, labels, alpha=0.5, temperature=1.0)
    assert float(loss) == pytest.approx(0.38769, abs=1e-5)
    # T=2: softmax of +-0.5 gives (0.37754, 0.62246); KL = 0.24492 * 0.5 = 0.12246, times
    # T^2 = 0.48984; 0.5 * 0.48984 + 0.5 * 0.31326 = 0.40155.
    loss = kd_kl_loss(student, teacher, labels, alpha=0.5, temperature=2.0)
    assert float(loss) == pytest.approx(0.40155, abs=1e-5)
    # alpha = 0 is plain cross-entropy; identical logits leave only the CE term.
    assert float(kd_kl_loss(student, teacher, labels, alpha=0.0)) == pytest.approx(0.31326, 1e-4)
    assert float(kd_kl_loss(student, student, labels, alpha=1.0)) == pytest.approx(0.0, abs=1e-7)


def test_every_other_layer_keeps_the_first_and_maps_student_layers_to_teacher_layers():
    assert every_other_layer(6) == [0, 2, 4]
    assert every_other_layer(5) == [0, 2, 4]
    assert every_other_layer(12) == [0, 2, 4, 6, 8, 10]
    keep = [0, 2, 4]
    assert teacher_key_for("bert.encoder.layer.1.output.dense.weight", keep) == (
        "bert.encoder.layer.2.output.dense.weight"
    )
    assert teacher_key_for("transformer.h.2.attn.c_attn.weight", keep) == (
        "transformer.h.4.attn.c_attn.weight"
    )
    assert teacher_key_for("encoder.block.1.layer.0.SelfAttention.q.weight", keep) == (
        "encoder.block.2.layer.0.SelfAttention.q.weight"
    )
    assert teacher_key_for("classifier.weight", keep) == "classifier.weight"


@pytest.mark.parametrize(
    ("family", "task", "labels"),
    [
        ("bert", "classification", ["ham", "spam"]),
        ("gpt2", "causal-lm", None),
        ("t5", "seq2seq", None),
    ],
)
def test_half_layers_student_starts_from_the_teachers_weights(tmp_path, family, task, labels):
    tiny_model_folder(tmp_path, family, TEXTS, labels=labels)
    teacher, _ = load_for_task(tmp_path, task)
    student = half_layers_student(teacher)
    t, s = teacher.state_dict(), student.state_dict()
    assert len(s) < len(t)
    for key, value in s.items():
        assert torch.equal(value, t[teacher_key_for(key, [0])]), key


def _config(tmp_path, run: str = "a", **params):
    fields = {
        "task": "classification",
        "teacher_dir": tmp_path / "teacher",
        "data_dir": tmp_path / "data",
        "output_dir": tmp_path / run / "out",
        "checkpoint_dir": tmp_path / run / "ckpt",
        "cache_dir": tmp_path / "data-cache",
        "teacher_key": "teacher-1-v1",
    }
    return DistillConfig(
        **fields,
        **{"max_steps": 3, "batch_size": 8, "max_length": 32, "latency_repeats": 1, **params},
    )


def _sms_dataset(folder):
    from datasets import ClassLabel, DatasetDict, Features, Value
    from datasets import Dataset as HFDataset

    rows = sms_rows(60)
    features = Features({"text": Value("string"), "label": ClassLabel(names=["ham", "spam"])})
    data = [{"text": r["text"], "label": ["ham", "spam"].index(r["label"])} for r in rows]
    DatasetDict(
        {
            "train": HFDataset.from_list(data[:48], features=features),
            "test": HFDataset.from_list(data[48:], features=features),
        }
    ).save_to_disk(str(folder))


def test_distill_trains_a_half_depth_student_and_caches_the_teacher_logits(tmp_path):
    tiny_model_folder(tmp_path / "teacher", "bert", TEXTS, labels=["ham", "spam"])
    _sms_dataset(tmp_path / "data")
    first = run_distill(_config(tmp_path), ListReporter())
    assert not first.teacher_logits_cached and first.global_step == 3
    report = first.report
    assert report["after"]["parameters"] < report["before"]["parameters"]
    assert {"quality_retained", "latency_ratio_b1", "latency_ratio_b32"} <= set(report["ratios"])
    student, _ = load_for_task(first.output_dir, "classification")
    assert student.config.num_hidden_layers == 1
    assert student.config.id2label == {0: "ham", 1: "spam"}

    reporter = ListReporter()
    second = run_distill(_config(tmp_path, run="b"), reporter)
    assert second.teacher_logits_cached and second.metrics["teacher_logits_cached"] is True
    phases = [e["name"] for e in reporter.of_kind("phase")]
    assert "teacher logits" not in phases  # nothing was computed for them


def test_hidden_cosine_loss_matches_a_hand_computed_value():
    # Token 1: (1, 0) vs (0, 1): cos 0, loss 1. Token 2: (1, 1) vs (1, 0): cos 1/sqrt(2),
    # loss 0.29289. Token 3 is padding (mask 0) and must not count, whatever it holds.
    student = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [5.0, -3.0]]])
    teacher = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [-5.0, 3.0]]])
    mask = torch.tensor([[1, 1, 0]])
    loss = hidden_cosine_loss(student, teacher, mask)
    assert float(loss) == pytest.approx((1.0 + 0.29289) / 2, abs=1e-5)
    assert float(hidden_cosine_loss(teacher, teacher, mask)) == pytest.approx(0.0, abs=1e-6)


def test_hidden_loss_trains_a_same_width_student_and_refuses_other_widths(tmp_path):
    tiny_model_folder(tmp_path / "teacher", "bert", TEXTS, labels=["ham", "spam"])
    _sms_dataset(tmp_path / "data")
    reporter = ListReporter()
    result = run_distill(_config(tmp_path, hidden_loss_weight=1.0, max_steps=2), reporter)
    assert result.global_step == 2 and "cos" in result.report["loss"]
    losses = [e["loss"] for e in reporter.of_kind("progress") if e.get("loss") is not None]
    assert losses and all(loss == loss for loss in losses)  # trained, no NaN
    plain = ListReporter()
    run_distill(_config(tmp_path, run="d", max_steps=2), plain)
    plain_losses = [e["loss"] for e in plain.of_kind("progress") if e.get("loss") is not None]
    # Same seed, same batches: the cosine term is the difference, and it is positive.
    assert losses[0] > plain_losses[0]
    # A mini preset (width 256) cannot be compared with the tiny teacher (width 128).
    wider = _config(tmp_path, run="c", hidden_loss_weight=1.0, student="preset")
    with pytest.raises(EngineError) as refused:
        run_distill(wider, ListReporter())
    assert refused.value.param == "hidden_loss_weight"


def test_a_budget_excludes_max_steps_and_keeps_time_for_measuring_the_student(tmp_path):
    with pytest.raises(EngineError) as both:
        _config(tmp_path, max_minutes=1)  # _config sets max_steps=3
    assert both.value.param == "max_minutes" and "max_steps" in str(both.value)
    config = _config(tmp_path, max_minutes=2, max_steps=-1)
    config.budget_started = 100.0
    train = config.train_config(tmp_path / "teacher", reserve_seconds=30)
    assert (train.max_minutes, train.budget_started, train.max_steps) == (1.5, 100.0, -1)
    assert config.train_config(tmp_path / "teacher").max_minutes == 2


@pytest.mark.timeout(180)
def test_a_budgeted_distillation_ends_on_time_with_its_schedule_fitted(tmp_path):
    import time

    tiny_model_folder(tmp_path / "teacher", "bert", TEXTS, labels=["ham", "spam"])
    _sms_dataset(tmp_path / "data")
    budget = 0.25  # minutes
    reporter = ListReporter()
    started = time.monotonic()
    result = run_distill(_config(tmp_path, max_minutes=budget, max_steps=-1), reporter)
    ratio = (time.monotonic() - started) / (budget * 60)
    print(f"distill time budget: actual / budget = {ratio:.3f}")
    # Loading, teacher logits, training, final evaluation, save and measuring the student
    # all fit; the bound is wide for a loaded 2-core machine (one slow step is seconds).
    assert 0.7 <= ratio <= 1.15, ratio
    progress = reporter.of_kind("progress")
    assert progress[-1]["step"] == progress[-1]["total"] == result.global_step > 6
    logs = [e["message"] for e in reporter.of_kind("log")]
    assert any(m.startswith("time budget:") and "planning" in m for m in logs), logs
