"""The steps of :func:`jobs.engine.finetune.run_training`, one function per recipe step.

Reusable by other recipes (distillation trains through the same Trainer set-up); models
load through :mod:`jobs.engine.models.loading`, the engine's one loader.

Past ~400 lines on purpose: it is a list of small independent steps (data, tokenize,
collate, Trainer set-up, checkpoints, the time budget's hook, save) that every training
recipe composes; splitting it would scatter the one Trainer configuration they share.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from jobs.engine.base import EngineError, Reporter
from jobs.engine.budget import STEP_CEILING, FinalEvaluationFollows, TimeBudgetCallback
from jobs.engine.callbacks import ReporterCallback, TimedCheckpointCallback
from jobs.engine.collate import (
    TOKENS_KEY,
    LengthBucketSampler,
    TokenCountingCollator,
    make_collator,
)
from jobs.engine.data.order import in_seeded_order
from jobs.engine.metrics import classification_metrics
from jobs.engine.models import loading
from jobs.engine.train_config import CLASSIFICATION_TASKS, GENERATION_SAMPLE, TrainConfig

CLASSIFICATION = CLASSIFICATION_TASKS
# LoRA targets per model_type: the attention projections LoRA's paper adapts (query and
# value).  Anything else falls back to peft's own table, then to the user's choice.
LORA_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "gpt2": ["c_attn"],
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
    "bart": ["q_proj", "v_proj"],
    "marian": ["q_proj", "v_proj"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
}
# Only these are ever loaded; trust_remote_code stays False so a model folder cannot run code.
SAFE_LOAD = {"local_files_only": True, "trust_remote_code": False}
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def load_dataset_dict(data_dir: Path) -> dict[str, Any]:
    """Split by split, because datasets 5.x ``load_from_disk`` cannot read back a split
    that was saved empty (no data files -> IndexError) and would lose the whole dict.
    Each split comes in its seeded order (``jobs.engine.data.order``)."""
    import json

    from datasets import Dataset

    try:
        names = json.loads((data_dir / "dataset_dict.json").read_text())["splits"]
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(f"No processed dataset at {data_dir}.", code="invalid_dataset") from exc
    splits = {}
    for name in names:
        state = json.loads((data_dir / name / "state.json").read_text())
        if state.get("_data_files"):
            split = Dataset.load_from_disk(str(data_dir / name))
            splits[name] = in_seeded_order(split, data_dir / name)
    return splits


def load_splits(config: TrainConfig) -> dict[str, Any]:
    """train (required, non-empty) plus validation/test when present and non-empty."""
    from datasets import ClassLabel

    data = load_dataset_dict(config.data_dir)
    if len(data.get("train", ())) == 0:
        raise EngineError(
            "The train split is missing or empty: nothing to train on.", code="empty_dataset"
        )
    splits = {name: data[name] for name in ("train", "validation", "test") if name in data}
    splits = {name: split for name, split in splits.items() if len(split) > 0}
    if config.task in CLASSIFICATION and "label" in splits["train"].column_names:
        feature = splits["train"].features["label"]
        if not isinstance(feature, ClassLabel):
            # The contract says ClassLabel; a plain int/str column still works when the
            # names are known (label_names) or can be read off the training rows.
            names = config.label_names or sorted({str(v) for v in splits["train"]["label"]})
            try:
                splits = {
                    n: s.cast_column("label", ClassLabel(names=names)) for n, s in splits.items()
                }
            except (ValueError, KeyError) as exc:
                raise EngineError(
                    f"Labels do not match label_names {names}: {exc}",
                    code="invalid_param",
                    param="label_names",
                ) from exc
    return splits


def label_names_for(config: TrainConfig, train: Any) -> list[str] | None:
    if config.task not in CLASSIFICATION:
        return None
    names = list(train.features["label"].names)
    if len(names) < 2:
        raise EngineError("Classification needs at least two classes.", code="invalid_dataset")
    return names


def load_hf_config(config: TrainConfig) -> Any:
    if not (config.model_dir / "config.json").is_file():
        raise EngineError(f"No config.json in {config.model_dir}.", code="invalid_model")
    hf_config = AutoConfig.from_pretrained(str(config.model_dir), **SAFE_LOAD)
    limit = getattr(hf_config, "max_position_embeddings", None) or getattr(
        hf_config, "n_positions", None
    )
    if limit and "roberta" in hf_config.model_type:
        limit -= 2  # RoBERTa offsets positions by padding_idx + 1
    if limit and config.max_length > limit:
        raise EngineError(
            f"max_length {config.max_length} is longer than this model's {limit} positions.",
            code="invalid_param",
            param="max_length",
        )
    return hf_config


def load_tokenizer(config: TrainConfig) -> Any:
    return loading.load_tokenizer(config.model_dir, require_pad=True)


def load_model(config: TrainConfig, hf_config: Any, tokenizer: Any, labels: list[str] | None):
    """Weights in fp32 (AMP needs fp32 master weights; 5.x loads the checkpoint's dtype by
    default); a pretrain job may start from a preset folder that holds no weights yet."""
    return loading.load_model(
        config.model_dir,
        config.task,
        config=hf_config,
        tokenizer=tokenizer,
        label_names=labels,
        dtype=torch.float32,
        from_scratch=config.job_type == "pretrain",
    )


def apply_lora(config: TrainConfig, model: Any, model_type: str) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT

    targets = config.lora_target_modules or LORA_TARGETS.get(model_type) or PEFT.get(model_type)
    if not targets:
        raise EngineError(
            f"No default LoRA target modules for {model_type}; set lora_target_modules.",
            code="invalid_param",
            param="lora_target_modules",
        )
    task_type = {
        "classification": TaskType.SEQ_CLS,  # also keeps the new head trainable
        "pair-classification": TaskType.SEQ_CLS,
        "causal-lm": TaskType.CAUSAL_LM,
        "seq2seq": TaskType.SEQ_2_SEQ_LM,
    }.get(config.task)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(targets),
        task_type=task_type,
        fan_in_fan_out=model_type == "gpt2",  # GPT-2 uses Conv1D (transposed weights)
    )
    if config.gradient_checkpointing:
        model.enable_input_require_grads()
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise EngineError(
            f"LoRA could not be applied: {exc}", code="invalid_param", param="lora_target_modules"
        ) from exc


def pick_eval_split(tokenized: dict[str, Any]) -> str | None:
    for name in ("test", "validation"):
        if name in tokenized and len(tokenized[name]) > 0:
            return name
    return None


class _Trainer(Trainer):
    """Trainer whose training order is our length-bucketed sampler (see collate.py)."""

    train_lengths: list[int] | None = None
    tokens_trained = 0  # real tokens of the batches trained on (TokenCountingCollator)

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        self.tokens_trained += int(inputs.pop(TOKENS_KEY, 0) or 0)
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model: Any, inputs: Any, *args: Any, **kw: Any) -> Any:
        inputs.pop(TOKENS_KEY, None)
        return super().prediction_step(model, inputs, *args, **kw)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        # The dataset passed here is a column-pruned copy of train_dataset (same rows).
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.train_lengths is not None and len(dataset) == len(self.train_lengths):
            return LengthBucketSampler(self.train_lengths, self.args.train_batch_size)
        return super()._get_train_sampler(train_dataset)


# The Trainer other recipes subclass (same sampler); public under this name.
BucketTrainer = _Trainer


def _total_steps(config: TrainConfig, train_rows: int) -> int:
    if config.max_steps > 0:
        return config.max_steps
    per_epoch = max(1, math.ceil(math.ceil(train_rows / config.batch_size) / config.grad_accum))
    return max(1, math.ceil(per_epoch * config.epochs))


def build_trainer(
    config: TrainConfig,
    model: Any,
    tokenizer: Any,
    tokenized: dict[str, Any],
    labels: list[str] | None,
    reporter: Reporter,
    *,
    trainer_class: type[_Trainer] | None = None,
    extra_args: dict[str, Any] | None = None,
    deadline: float | None = None,
) -> tuple[_Trainer, ReporterCallback]:
    """The recipe's Trainer; other recipes pass a subclass (distillation overrides
    ``compute_loss``) and extra ``TrainingArguments`` and keep collator and sampler.

    With ``config.max_minutes``, ``deadline`` (a ``time.monotonic()`` value: when the whole
    run, final evaluation and save included, must be over) arms a
    :class:`~jobs.engine.budget.TimeBudgetCallback`, which picks the step count.
    """
    cuda = torch.cuda.is_available()
    precision = config.resolved_precision()
    if precision == "fp16" and not cuda:
        raise EngineError(
            "fp16 needs a GPU; use fp32 or bf16 on CPU.", code="invalid_param", param="precision"
        )
    # The sampler reads lengths before the column goes; the model must never see it.
    train_lengths = list(tokenized["train"]["length"])
    tokenized = {name: split.remove_columns("length") for name, split in tokenized.items()}
    has_val = "validation" in tokenized
    budgeted = config.max_minutes is not None
    # A budgeted run's length is planned once its first steps are timed (budget.py); until
    # then the Trainer only needs a bound that sizes its epoch loop.
    max_steps = STEP_CEILING if budgeted else config.max_steps
    total = STEP_CEILING if budgeted else _total_steps(config, len(tokenized["train"]))
    # Checkpoints cost seconds each (weights + optimizer state), so unless the person asks
    # for save_steps they are taken by wall clock (TimedCheckpointCallback) and a short
    # run takes none; a cancel still saves one (ReporterCallback).
    timed = config.save_steps is None and not config.early_stopping_patience
    save_steps = config.save_steps or max(10, min(total // 10, 10_000))
    eval_steps = config.eval_steps
    callbacks: list[Any] = []
    if config.early_stopping_patience:
        if not has_val:
            raise EngineError(
                "Early stopping needs a validation split.",
                code="invalid_param",
                param="early_stopping_patience",
            )
        eval_steps = eval_steps or save_steps
        # The best model is restored from a checkpoint, so saves must land on evaluations.
        save_steps = eval_steps * max(1, math.ceil(save_steps / eval_steps))
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    eval_strategy = ("steps" if eval_steps else "epoch") if has_val else "no"
    is_classifier = config.task in CLASSIFICATION
    args = TrainingArguments(
        output_dir=str(config.checkpoint_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of total steps in 5.x
        weight_decay=config.weight_decay,
        seed=config.seed,
        # ReporterCallback decides when to log (every step at first, then by the clock):
        # a log reads the loss back from the device and sends an event.
        logging_strategy="no",
        eval_strategy=eval_strategy,
        eval_steps=eval_steps,
        save_strategy="no" if timed else "steps",
        save_steps=save_steps,
        save_total_limit=2,  # 5.x always writes safetensors for the model weights
        load_best_model_at_end=bool(config.early_stopping_patience),
        metric_for_best_model="eval_loss" if config.early_stopping_patience else None,
        greater_is_better=False if config.early_stopping_patience else None,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=config.gradient_checkpointing,
        include_num_input_tokens_seen="no",  # the collator counts them (TokenCountingCollator)
        prediction_loss_only=not is_classifier,  # LM logits are (B, T, V): never keep them
        label_names=["labels"],  # a peft-wrapped model's forward hides its label argument
        dataloader_pin_memory=cuda,
        disable_tqdm=True,
        report_to="none",
        **(extra_args or {}),
    )
    if timed:
        callbacks.append(TimedCheckpointCallback(config.save_minutes * 60))
    collator = TokenCountingCollator(
        make_collator(
            config.task,
            tokenizer,
            model,
            mlm_probability=config.mlm_probability,
            pad8=precision in ("fp16", "bf16"),
        )
    )
    callback = ReporterCallback(reporter, samples_per_step=config.batch_size * config.grad_accum)
    trainer = (trainer_class or _Trainer)(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation") if has_val else None,
        processing_class=tokenizer,
        compute_metrics=_accuracy_f1(labels) if labels else None,
        preprocess_logits_for_metrics=_argmax if is_classifier else None,
        callbacks=[callback, *callbacks],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log line to stdout
    callback.tokens = trainer  # reads trainer.tokens_trained
    if budgeted:
        budget = _budget_callback(config, model, tokenized, reporter, args, deadline)
        # First in line: it moves state.max_steps, which DefaultFlowCallback then reads.
        trainer.callback_handler.callbacks.insert(0, budget)
        if not config.early_stopping_patience:  # it restores the best of the evaluations
            trainer.add_callback(FinalEvaluationFollows())
    trainer.train_lengths = train_lengths if config.group_by_length else None
    return trainer, callback


def _budget_callback(
    config: TrainConfig,
    model: Any,
    tokenized: dict[str, Any],
    reporter: Reporter,
    args: TrainingArguments,
    deadline: float | None,
) -> TimeBudgetCallback:
    import time

    from jobs.engine.device import device_description

    assert config.max_minutes is not None
    budget = config.max_minutes * 60
    per_step = config.batch_size * config.grad_accum
    val_rows = len(tokenized["validation"]) if "validation" in tokenized else 0
    final = pick_eval_split(tokenized)
    eval_every = None
    if val_rows:
        per_epoch = math.ceil(
            math.ceil(len(tokenized["train"]) / config.batch_size) / config.grad_accum
        )
        eval_every = args.eval_steps if args.eval_strategy == "steps" else max(1, per_epoch)
    hint = None
    if config.throughput_hint:
        device = device_description()
        hint = config.throughput_hint.get(device) or config.throughput_hint.get(
            device.split(" ", 1)[0]
        )
    return TimeBudgetCallback(
        deadline=deadline if deadline is not None else time.monotonic() + budget,
        budget_seconds=budget,
        warmup=config.warmup_ratio,
        eval_rows=len(tokenized[final]) if final else 0,
        validation_rows=val_rows,
        eval_every=eval_every,
        samples_per_step=per_step,
        model_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
        generation_rows=min(GENERATION_SAMPLE, len(tokenized[final]))
        if final and config.task == "seq2seq"
        else 0,
        hint_samples_per_second=hint,
        log=lambda message: reporter.emit("log", message=message, level="info"),
    )


def _argmax(logits: Any, labels: Any) -> Any:
    # (B, C) logits -> (B,) class ids, so evaluation never accumulates full logits.
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def _accuracy_f1(names: list[str]):
    def compute(prediction: Any) -> dict[str, float]:
        result = classification_metrics(
            prediction.predictions.tolist(), prediction.label_ids.tolist(), names
        )
        return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}

    return compute


def last_checkpoint(checkpoint_dir: Path) -> str | None:
    """Newest *complete* checkpoint: trainer_state.json is the last file a save writes,
    so a folder without it is a save the dying worker never finished."""
    if not checkpoint_dir.is_dir():
        return None
    found = [
        (int(m.group(1)), path)
        for path in checkpoint_dir.iterdir()
        if (m := _CHECKPOINT.match(path.name)) and (path / "trainer_state.json").is_file()
    ]
    # Resuming loads optimizer/scheduler/RNG state that Trainer stores with torch.load
    # (weights_only=True in 5.x).  Those files are written here by our own worker into a
    # job-private folder, never uploaded by users, so this is not loading untrusted pickles.
    return str(max(found)[1]) if found else None


def prune_incomplete_checkpoints(checkpoint_dir: Path) -> list[str]:
    """Remove checkpoint folders whose save never finished; return their names.

    Trainer writes a checkpoint in place (no temporary name), ``trainer_state.json`` last.
    A save cut short (a full disk, a killed worker) leaves a folder without it, which
    ``last_checkpoint`` already ignores; removing it keeps the disk and the job folder
    honest. Complete checkpoints are never touched.
    """
    import shutil

    if not checkpoint_dir.is_dir():
        return []
    removed = []
    for path in checkpoint_dir.iterdir():
        if _CHECKPOINT.match(path.name) and not (path / "trainer_state.json").is_file():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def checkpoint_step(path: str) -> int:
    match = _CHECKPOINT.match(Path(path).name)
    assert match is not None
    return int(match.group(1))
