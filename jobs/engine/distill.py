"""Knowledge distillation for classifiers: a smaller student learns the teacher's soft labels.

Reads like the fine-tune recipe it reuses (:mod:`jobs.engine.training_steps`: dynamic
padding, length-bucketed batches, the reporter callback, checkpoints):
config -> data -> teacher -> teacher logits (cached per dataset version) -> student ->
tokenize -> Trainer whose ``compute_loss`` is :func:`kd_kl_loss` -> train -> measure
teacher and student on the same split -> save. Importing this module does not import
torch: the web process reads the parameter table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jobs.engine.base import Cancelled, EngineError, Reporter
from jobs.engine.distill_config import (
    SEQUENCE_TASKS,
    DistillConfig,
    DistillResult,
    refuse_teacher_precision,
)

__all__ = ["DistillConfig", "DistillResult", "hidden_cosine_loss", "kd_kl_loss", "run_distill"]


def kd_kl_loss(
    student_logits: Any,
    teacher_logits: Any,
    labels: Any,
    *,
    alpha: float = 0.5,
    temperature: float = 2.0,
) -> Any:
    """α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−α)·CE(s, labels).

    Shapes: ``student_logits`` and ``teacher_logits`` (B, C), ``labels`` (B,) class ids.
    KL is summed over classes and averaged over the batch (``batchmean``, the true KL);
    T² keeps the soft term's gradients the size of the hard term's as T grows (Hinton et
    al. 2015). α = 1 is pure distillation, α = 0 plain fine-tuning.
    """
    import torch.nn.functional as F  # noqa: N812

    t = temperature
    soft_student = F.log_softmax(student_logits.float() / t, dim=-1)  # (B, C)
    soft_teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)  # (B, C)
    kl = F.kl_div(soft_student, soft_teacher, reduction="batchmean", log_target=True)
    ce = F.cross_entropy(student_logits.float(), labels)
    return alpha * t * t * kl + (1.0 - alpha) * ce


def hidden_cosine_loss(student_hidden: Any, teacher_hidden: Any, attention_mask: Any) -> Any:
    """Mean over real tokens of 1 − cos(student, teacher) of the last hidden states.

    Shapes: ``student_hidden`` and ``teacher_hidden`` (B, T, H) with the same H,
    ``attention_mask`` (B, T) of 0/1. DistilBERT's cosine embedding loss: it aligns the
    directions of the two models' token representations, padding excluded.
    """
    import torch.nn.functional as F  # noqa: N812

    cos = F.cosine_similarity(student_hidden.float(), teacher_hidden.float(), dim=-1)  # (B, T)
    mask = attention_mask.to(cos.dtype)
    return ((1.0 - cos) * mask).sum() / mask.sum().clamp(min=1.0)


def teacher_logits_path(config: DistillConfig) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in config.teacher_key)
    return config.cache_dir / f"teacher-{safe}-len{config.max_length}.safetensors"


def teacher_logits(
    config: DistillConfig, teacher: Any, tokenizer: Any, texts: list[Any], reporter: Reporter
) -> tuple[Any, bool]:
    """(N, C) teacher logits for the training rows, and whether they came from the cache.

    Computed once per (dataset version, teacher, max_length) and kept next to the dataset:
    both are immutable, so a second distillation from the same teacher pays nothing. The
    file is written to a temporary name and renamed, so a crash never leaves half of it.
    """
    from safetensors.torch import load_file, save_file

    from jobs.engine.measure import predict_logits

    path = teacher_logits_path(config)
    if path.is_file():
        logits = load_file(str(path))["logits"]
        if logits.shape[0] == len(texts):
            reporter.emit("log", message="teacher logits: cached", level="info")
            return logits, True
    reporter.emit("phase", name="teacher logits", done=0, total=None)
    reporter.emit("log", message=f"teacher logits: computing for {len(texts):,} rows", level="info")
    logits = predict_logits(
        teacher, tokenizer, texts, batch_size=config.batch_size, max_length=config.max_length
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"logits": logits.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return logits, False


def _texts(split: Any, task: str) -> list[Any]:
    if task == "classification":
        return list(split["text"])
    return list(zip(split["text_a"], split["text_b"], strict=True))


def _remap_labels(splits: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Label ids in the teacher's order (the student inherits the teacher's head)."""
    from datasets import ClassLabel

    have = list(splits["train"].features["label"].names)
    if have == names:
        return splits
    if sorted(have) != sorted(names):
        raise EngineError(
            f"The dataset's labels {have} are not the teacher's {names}.",
            code="label_mismatch",
            param="dataset",
        )
    order = [names.index(n) for n in have]
    out = {}
    for name, split in splits.items():
        split = split.cast_column("label", ClassLabel(num_classes=len(have)))
        split = split.map(lambda b: {"label": [order[i] for i in b["label"]]}, batched=True)
        out[name] = split.cast_column("label", ClassLabel(names=names))
    return out


def _build_student(
    config: DistillConfig, teacher: Any, scratch: Path, labels: list[str], reporter: Reporter
) -> tuple[Any, Any, str]:
    """(student, its tokenizer, a description) for the chosen kind of student."""
    import torch

    from jobs.engine import students
    from jobs.engine.models.loading import load_for_task, load_tokenizer

    torch.manual_seed(config.seed)
    if config.student == "half-layers":
        student = students.half_layers_student(teacher)
        tokenizer = load_tokenizer(config.teacher_dir, require_pad=True)
        kept = students.half_layers_config(teacher.config)[1]
        return student, tokenizer, f"teacher layers {kept} (every other one)"
    if config.student == "preset":
        folder = students.preset_student(
            teacher_dir=config.teacher_dir,
            model_type=teacher.config.model_type,
            size=config.student_preset,
            out_dir=scratch / "student-init",
            seed=config.seed,
        )
        student, tokenizer = load_for_task(folder, config.task, label_names=labels)
        family = students.family_of(teacher.config.model_type)
        return student, tokenizer, f"preset {family}-{config.student_preset}, teacher tokenizer"
    if config.student_dir is None:
        raise EngineError(
            "student=model needs a student model.", code="invalid_param", param="student_model"
        )
    student, tokenizer = load_for_task(config.student_dir, config.task, label_names=labels)
    reporter.emit("log", message=f"student: {config.student_dir.name}", level="info")
    return student, tokenizer, "an existing model"


def _distill_trainer_class(
    alpha: float, temperature: float, *, teacher: Any = None, hidden_weight: float = 0.0
) -> type:
    from jobs.engine.training_steps import BucketTrainer

    class DistillTrainer(BucketTrainer):
        """The recipe's Trainer (collator, length buckets) with the KD loss.

        Training batches carry ``teacher_logits`` (B, C) from the cache; evaluation
        batches do not, and fall back to the model's own cross-entropy. With
        ``hidden_weight`` > 0 the teacher also runs on each training batch for its last
        hidden states (they are too large to cache: (N, T, H)).
        """

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kw: Any
        ) -> Any:
            cached = inputs.pop("teacher_logits", None)
            hidden = cached is not None and hidden_weight > 0 and teacher is not None
            outputs = model(**inputs, output_hidden_states=True) if hidden else model(**inputs)
            if cached is None:
                loss = outputs.loss
            else:
                loss = kd_kl_loss(
                    outputs.logits,
                    cached.to(outputs.logits.device),
                    inputs["labels"],
                    alpha=alpha,
                    temperature=temperature,
                )
            if hidden:
                loss = loss + hidden_weight * _hidden_term(model, teacher, inputs, outputs)
            return (loss, outputs) if return_outputs else loss

    return DistillTrainer


def _hidden_term(model: Any, teacher: Any, inputs: dict[str, Any], outputs: Any) -> Any:
    import torch

    device = outputs.logits.device
    if next(teacher.parameters()).device != device:
        teacher.to(device)
    features = {k: v for k, v in inputs.items() if k != "labels"}
    with torch.no_grad():
        reference = teacher(**features, output_hidden_states=True).hidden_states[-1]
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones(reference.shape[:2], device=device)
    return hidden_cosine_loss(outputs.hidden_states[-1], reference, mask)


def _check_hidden_widths(config: DistillConfig, teacher: Any, student: Any) -> None:
    if config.hidden_loss_weight <= 0:
        return
    widths = [getattr(m.config, "hidden_size", None) for m in (teacher, student)]
    if widths[0] is None or widths[0] != widths[1]:
        raise EngineError(
            f"The hidden-state loss compares hidden states of equal width; the teacher's are "
            f"{widths[0]} wide and the student's {widths[1]}. Set hidden_loss_weight=0 or "
            "choose a student of the teacher's width (e.g. student=half-layers).",
            code="invalid_param",
            param="hidden_loss_weight",
        )
    if config.student == "model":
        raise EngineError(
            "The hidden-state loss needs the teacher's tokenizer (token i must be the same "
            "token for both); use student=half-layers or student=preset.",
            code="invalid_param",
            param="hidden_loss_weight",
        )


def budget_deadline(train_cfg: Any) -> float | None:
    """When the student's training (final evaluation and save included) must be over."""
    if not train_cfg.max_minutes:
        return None
    return train_cfg.budget_started + train_cfg.max_minutes * 60


def run_distill(config: DistillConfig, reporter: Reporter) -> DistillResult:
    """Distill the teacher in ``config.teacher_dir`` into a student saved at ``output_dir``.

    Raises:
        Cancelled: the reporter asked to stop (a checkpoint is kept).
        EngineError: ``student_unsupported`` (no layer stack / preset for the family),
            ``label_mismatch``, ``empty_dataset`` and the fine-tune recipe's errors.
    """
    import time

    # A time budget covers the whole job: teacher logits, training, measuring the student.
    if config.max_minutes and config.budget_started is None:
        config.budget_started = time.monotonic()
    if config.task in SEQUENCE_TASKS:
        from jobs.engine.seqkd import run_sequence_distill

        return run_sequence_distill(config, reporter)

    import tempfile

    import datasets
    import transformers

    from jobs.engine import training_steps as t
    from jobs.engine.collate import tokenize_split
    from jobs.engine.device import device_description
    from jobs.engine.measure import EvalRows, compare, measure
    from jobs.engine.models.loading import load_for_task

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    transformers.set_seed(config.seed)
    log = lambda message: reporter.emit("log", message=message, level="info")  # noqa: E731

    refuse_teacher_precision(config)
    teacher, teacher_tok = load_for_task(config.teacher_dir, config.task)
    teacher = teacher.float().eval()
    labels = [str(teacher.config.id2label[i]) for i in sorted(teacher.config.id2label)]
    splits = _remap_labels(t.load_splits(config.train_config(config.teacher_dir)), labels)
    eval_name = next((n for n in ("test", "validation") if n in splits), None)
    eval_rows = None
    if eval_name is not None:
        rows = splits[eval_name].select(range(min(config.eval_rows, len(splits[eval_name]))))
        eval_rows = EvalRows(texts=_texts(rows, config.task), labels=list(rows["label"]))
    measuring = {
        "task": config.task,
        "rows": eval_rows,
        "label_names": labels,
        "max_length": config.max_length,
        "repeats": config.latency_repeats,
    }
    reporter.emit("phase", name="measuring the teacher", done=0, total=None)
    measured_at = time.monotonic()
    teacher_figures = measure(teacher, teacher_tok, folder=config.teacher_dir, **measuring)
    measuring_seconds = time.monotonic() - measured_at
    n_teacher = sum(x.numel() for x in teacher.parameters())
    logits, cached = teacher_logits(
        config, teacher, teacher_tok, _texts(splits["train"], config.task), reporter
    )

    with tempfile.TemporaryDirectory(prefix="llmweb-distill-") as scratch_name:
        scratch = Path(scratch_name)
        student, tokenizer, how = _build_student(config, teacher, scratch, labels, reporter)
        _check_hidden_widths(config, teacher, student)
        if config.hidden_loss_weight <= 0:
            teacher = None  # free it: the cached logits are all training needs
        student = student.float()
        n_student = sum(x.numel() for x in student.parameters())
        log(f"student: {how}, {n_student:,} parameters")
        # Measuring the student scales with its size: a time budget keeps that much for it.
        reserve = measuring_seconds * min(1.0, n_student / max(n_teacher, 1))
        train_cfg = config.train_config(config.teacher_dir, reserve_seconds=reserve)
        tokenized = {
            name: tokenize_split(
                split, tokenizer, config.task, config.max_length, str(scratch / f"{name}.arrow")
            )
            for name, split in splits.items()
        }
        tokenized["train"] = tokenized["train"].add_column("teacher_logits", logits.tolist())
        trainer, callback = t.build_trainer(
            train_cfg,
            student,
            tokenizer,
            tokenized,
            labels,
            reporter,
            trainer_class=_distill_trainer_class(
                config.alpha,
                config.temperature,
                teacher=teacher,
                hidden_weight=config.hidden_loss_weight,
            ),
            # teacher_logits is not a forward() argument; compute_loss takes it out.
            extra_args={"remove_unused_columns": False},
            deadline=budget_deadline(train_cfg),
        )
        last = t.last_checkpoint(config.checkpoint_dir)
        output = trainer.train(resume_from_checkpoint=last)
        if callback.cancelled:
            raise Cancelled(f"cancelled at step {trainer.state.global_step}")
        student = trainer.model.eval()
        reporter.emit("phase", name="saving", done=0, total=None)
        config.output_dir.mkdir(parents=True, exist_ok=True)
        student.save_pretrained(str(config.output_dir))
        tokenizer.save_pretrained(str(config.output_dir))
        reporter.emit("phase", name="measuring the student", done=0, total=None)
        student_figures = measure(student, tokenizer, folder=config.output_dir, **measuring)

    ratios = compare(teacher_figures, student_figures)
    report = {
        "kind": "distill",
        "student": config.student,
        "student_description": how,
        "loss": f"{config.alpha}·T²·KL + {1 - config.alpha:g}·CE, T={config.temperature}"
        + (
            f" + {config.hidden_loss_weight:g}·(1 − cos) of last hidden states"
            if config.hidden_loss_weight > 0
            else ""
        ),
        "teacher_logits": "cached" if cached else "computed",
        "device": device_description(),
        "eval": {"split": eval_name, "rows": len(eval_rows.texts)} if eval_rows else None,
        "before": teacher_figures,
        "after": student_figures,
        "ratios": ratios,
    }
    metrics = {k: v for k, v in ratios.items() if v is not None}
    if student_figures.get("quality"):
        metrics.update({k: v for k, v in student_figures["quality"].items() if k != "rows"})
    metrics["teacher_logits_cached"] = cached
    reporter.emit("metrics", step=trainer.state.global_step, final=True, **metrics)
    train_metrics = output.metrics
    return DistillResult(
        output_dir=config.output_dir,
        metrics=metrics,
        report=report,
        teacher_logits_cached=cached,
        global_step=trainer.state.global_step,
        train_runtime=float(train_metrics.get("train_runtime", 0.0)),
    )
