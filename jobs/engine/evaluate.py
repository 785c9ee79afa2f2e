"""Evaluate: score models on one split of one dataset, the same way for every model.

Reads like a recipe: config -> rows of the split -> for each model: load -> score by task
(classification, language-model likelihood, or generation) -> per-sample JSONL ->
speed and size. The parameter table lives in :mod:`jobs.engine.eval_config` so the web
process can validate and build forms without torch. Metrics come from
:mod:`jobs.engine.metrics` (scikit-learn, sacrebleu, rouge-score) and
:mod:`jobs.engine.lm_scoring`; nothing is fetched from a hub.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine.base import Cancelled, EngineError, Reporter
from jobs.engine.eval_config import EvalModel, EvaluateConfig
from jobs.engine.jsonable import jsonable
from jobs.engine.schemas import CLASSIFICATION_TASKS

__all__ = ["EvaluateConfig", "EvaluateResult", "ModelEvaluation", "run_evaluation"]

LN2 = math.log(2.0)


@dataclass
class ModelEvaluation:
    """One model's scores. ``measure`` says what kind of numbers ``metrics`` holds."""

    key: str
    measure: str  # "classification" | "perplexity" | "pseudo-perplexity" | "generation"
    metrics: dict[str, Any]
    signatures: dict[str, str]
    speed: dict[str, Any]
    samples_path: Path
    num_samples: int


@dataclass
class EvaluateResult:
    split: str
    device: str
    rows: int
    evaluations: list[ModelEvaluation] = field(default_factory=list)


# --- data ------------------------------------------------------------------------------


def load_rows(config: EvaluateConfig) -> tuple[str, list[dict[str, Any]], list[str] | None]:
    """``(split name, rows, label names)`` of the split the config asks for."""
    from datasets import ClassLabel, concatenate_datasets

    from jobs.engine.training_steps import load_dataset_dict

    splits = {name: s for name, s in load_dataset_dict(config.data_dir).items() if len(s) > 0}
    if config.split == "all":
        if not splits:
            raise EngineError("The dataset has no rows.", code="empty_dataset", param="split")
        name, data = "all", concatenate_datasets(list(splits.values()))
    else:
        order = ("test", "validation") if config.split == "auto" else (config.split,)
        name = next((n for n in order if n in splits), "")
        if not name:
            raise EngineError(
                f"The dataset has no {' or '.join(order)} rows to evaluate on; choose another "
                f"split ({', '.join(splits) or 'none'} have rows) or all.",
                code="empty_split",
                param="split",
            )
        data = splits[name]
    if config.max_rows is not None:
        data = data.select(range(min(config.max_rows, len(data))))
    labels = config.label_names
    if config.task in CLASSIFICATION_TASKS:
        feature = data.features.get("label")
        if isinstance(feature, ClassLabel):
            labels = list(feature.names)
        if not labels:
            raise EngineError("The dataset's labels are unknown.", code="invalid_dataset")
    return name, data.to_list(), labels


# --- per-task scoring -------------------------------------------------------------------


def label_columns(model_labels: list[str], data_labels: list[str]) -> list[int]:
    """For each dataset class, the model output that means it (classes are matched by name)."""
    if sorted(model_labels) == sorted(data_labels):
        return [model_labels.index(name) for name in data_labels]
    generic = [f"LABEL_{i}" for i in range(len(model_labels))]
    if model_labels == generic and len(model_labels) == len(data_labels):
        return list(range(len(data_labels)))  # an unnamed head: trust the id order
    raise EngineError(
        f"The model classifies into {model_labels} but the dataset's labels are {data_labels}.",
        code="label_mismatch",
        param="dataset",
    )


def score_classification(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    labels: list[str],
    config: EvaluateConfig,
    tick: Callable[[int], None],
) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    import torch

    from jobs.engine.metrics import classification_report

    names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    cols = torch.tensor(label_columns(names, labels))
    pair = config.task == "pair-classification"
    device = next(model.parameters()).device
    preds, golds, confs, samples = [], [], [], []
    for start in range(0, len(rows), config.batch_size):
        chunk = rows[start : start + config.batch_size]
        texts = (
            [[r["text_a"] for r in chunk], [r["text_b"] for r in chunk]]
            if pair
            else [[r["text"] for r in chunk]]
        )
        enc = tokenizer(
            *texts, truncation=True, max_length=config.max_length, padding=True, return_tensors="pt"
        )
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float()
        probs = logits.softmax(dim=-1)[:, cols.to(device)].cpu()  # (B, C) in dataset order
        for i, row in enumerate(chunk):
            p = probs[i]
            pred, gold = int(p.argmax()), int(row["label"])
            preds.append(pred)
            golds.append(gold)
            confs.append(float(p[pred]))
            samples.append(
                {
                    "input": row["text"] if not pair else f"{row['text_a']}\n{row['text_b']}",
                    "reference": labels[gold],
                    "prediction": labels[pred],
                    "true": labels[gold],
                    "pred": labels[pred],
                    "confidence": float(p[pred]),
                    "loss": -math.log(max(float(p[gold]), 1e-12)),
                    "score": float(p[gold]),
                    "correct": pred == gold,
                }
            )
        tick(len(chunk))
    report = classification_report(preds, golds, labels, confs)
    report["loss"] = sum(s["loss"] for s in samples) / max(1, len(samples))
    signature = f"sklearn:{_version('scikit-learn')}|ece:bins=10,equal-width|argmax"
    return report, {"classification": signature}, samples


def score_causal_lm(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    config: EvaluateConfig,
    tick: Callable[[int], None],
) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    """Sliding-window perplexity and bits-per-byte over the rows' own tokens.

    A bos token (where the tokenizer has one) is put before each row so its first token
    is predicted too; then the nats summed over the row are the whole row's bytes' worth,
    and bits-per-byte compares models whose tokenizers differ.
    """
    from jobs.engine.lm_scoring import causal_nll

    bos = tokenizer.bos_token_id
    rows = [
        ([bos] if bos is not None else []) + tokenizer(t, add_special_tokens=False)["input_ids"]
        for t in texts
    ]
    scored = causal_nll(
        model,
        rows,
        max_length=config.max_length,
        batch_size=config.batch_size,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        on_batch=tick,
    )
    samples = []
    for text, (nll, n) in zip(texts, scored, strict=True):
        loss = nll / n if n else None
        samples.append(
            {
                "input": text,
                "reference": None,
                "prediction": None,
                "loss": loss,
                "score": math.exp(min(loss, 700)) if loss is not None else None,
                "tokens": n,
                "correct": None,
            }
        )
    metrics = _likelihood_metrics(scored, texts, "perplexity")
    signature = (
        f"sliding-window|max_length:{config.max_length}|stride:{config.max_length // 2}"
        f"|bos:{'yes' if bos is not None else 'no'}|nats->bits-per-utf8-byte"
    )
    return metrics, {"perplexity": signature}, samples


def score_masked_lm(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    config: EvaluateConfig,
    tick: Callable[[int], None],
) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    """Pseudo-perplexity and masked-token accuracy, each token masked in turn."""
    from jobs.engine.lm_scoring import pseudo_nll

    encs = [
        tokenizer(
            t,
            truncation=True,
            max_length=config.max_length,
            return_special_tokens_mask=True,
            return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)),
        )
        for t in texts
    ]
    scored = pseudo_nll(
        model,
        [e["input_ids"] for e in encs],
        specials=[[bool(s) for s in e["special_tokens_mask"]] for e in encs],
        mask_id=tokenizer.mask_token_id,
        batch_size=config.batch_size,
        on_batch=tick,
    )
    kept = []  # the text the scored tokens cover (rows longer than max_length are cut)
    for text, enc in zip(texts, encs, strict=True):
        offsets = enc.get("offset_mapping")
        kept.append(text[: max((end for _, end in offsets), default=0)] if offsets else text)
    samples = [
        {
            "input": text,
            "reference": None,
            "prediction": None,
            "loss": nll / n if n else None,
            "score": hits / n if n else None,
            "tokens": n,
            "correct": None,
        }
        for text, (nll, n, hits) in zip(texts, scored, strict=True)
    ]
    metrics = _likelihood_metrics([(s[0], s[1]) for s in scored], kept, "pseudo_perplexity")
    tokens = sum(s[1] for s in scored)
    metrics["masked_token_accuracy"] = sum(s[2] for s in scored) / tokens if tokens else 0.0
    signature = f"pseudo-log-likelihood|one-token-masked|max_length:{config.max_length}"
    return metrics, {"pseudo_perplexity": signature}, samples


def _likelihood_metrics(scored: list[tuple[float, int]], texts: list[str], name: str) -> dict:
    nll = sum(s[0] for s in scored)
    tokens = sum(s[1] for s in scored)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    loss = nll / tokens if tokens else float("nan")
    return {
        name: math.exp(loss) if tokens and loss < 700 else float("inf"),
        "loss": loss,
        "bits_per_byte": nll / LN2 / n_bytes if n_bytes else float("nan"),
        "tokens": tokens,
        "bytes": n_bytes,
    }


def score_generation(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    config: EvaluateConfig,
    tick: Callable[[int], None],
) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    """Generated text against the target: BLEU and chrF++ (sacrebleu), ROUGE (rouge-score)."""
    from jobs.engine.generate import generate_texts
    from jobs.engine.lm_scoring import target_nll
    from jobs.engine.metrics import bleu_chrf_signed, rouge_full, sentence_chrf

    sources = [r["source"] for r in rows]
    refs = [r["target"] for r in rows]
    hyps: list[str] = []
    for start in range(0, len(rows), config.batch_size):
        hyps.extend(
            generate_texts(
                model,
                tokenizer,
                sources[start : start + config.batch_size],
                batch_size=config.batch_size,
                max_length=config.max_length,
                max_new_tokens=config.max_new_tokens,
                num_beams=config.num_beams,
            )
        )
        tick(min(config.batch_size, len(rows) - start))
    losses = target_nll(
        model, tokenizer, sources, refs, max_length=config.max_length, batch_size=config.batch_size
    )
    scores, signatures = bleu_chrf_signed(hyps, refs)
    rouge_means, rouge_rows, rouge_sig = rouge_full(hyps, refs)
    samples = [
        {
            "input": src,
            "reference": ref,
            "prediction": hyp,
            "loss": loss,
            "score": sentence_chrf(hyp, ref),
            **{k: v for k, v in rr.items()},
            "correct": hyp.strip() == ref.strip(),
        }
        for src, ref, hyp, loss, rr in zip(sources, refs, hyps, losses, rouge_rows, strict=True)
    ]
    metrics = {
        **scores,
        **rouge_means,
        "exact_match": sum(s["correct"] for s in samples) / max(1, len(samples)),
        "loss": sum(losses) / max(1, len(losses)),
        "generation": {"max_new_tokens": config.max_new_tokens, "num_beams": config.num_beams},
    }
    return metrics, {**signatures, "rouge": rouge_sig}, samples


# --- the recipe -------------------------------------------------------------------------


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _load(entry: EvalModel, task: str) -> tuple[Any, Any]:
    import torch

    from jobs.engine.models.loading import load_for_task

    load_task = "classification" if task in CLASSIFICATION_TASKS else entry.task
    model, tokenizer = load_for_task(entry.path, load_task, dtype=torch.float32)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model, tokenizer


def _speed_inputs(task: str, rows: list[dict[str, Any]]) -> list[Any]:
    rows = rows[:64]
    if task == "pair-classification":
        return [(r["text_a"], r["text_b"]) for r in rows]
    if task == "seq2seq":
        return [r["source"] for r in rows]
    return [r["text"] for r in rows]


def evaluate_model(
    entry: EvalModel,
    config: EvaluateConfig,
    rows: list[dict[str, Any]],
    labels: list[str] | None,
    tick: Callable[[int], None],
) -> ModelEvaluation:
    """Load one model, score it on ``rows``, write its samples, time it."""
    from jobs.engine import speed

    with speed.MemoryWatch() as memory, speed.fixed_threads(config.threads):
        model, tokenizer = _load(entry, config.task)
        if config.task in CLASSIFICATION_TASKS:
            assert labels is not None
            measure = "classification"
            metrics, sigs, samples = score_classification(
                model, tokenizer, rows, labels, config, tick
            )
        elif config.task == "seq2seq":
            measure = "generation"
            metrics, sigs, samples = score_generation(model, tokenizer, rows, config, tick)
        else:
            texts = [r["text"] for r in rows if r.get("text")]
            if entry.task == "masked-lm":
                measure = "pseudo-perplexity"
                metrics, sigs, samples = score_masked_lm(model, tokenizer, texts, config, tick)
            else:
                measure = "perplexity"
                metrics, sigs, samples = score_causal_lm(model, tokenizer, texts, config, tick)
        timing: dict[str, Any] = {}
        if config.measure_speed and rows:
            generates = entry.task in ("causal-lm", "seq2seq")
            timing = speed.measure(
                model,
                tokenizer,
                _speed_inputs(config.task, rows),
                max_length=config.max_length,
                runs=config.latency_runs,
                generate_tokens=min(config.max_new_tokens, 32) if generates else 0,
            )
        num_parameters = sum(p.numel() for p in model.parameters())
    timing.update(memory.result())
    timing.update(
        {
            "num_parameters": int(num_parameters),
            "size_bytes": speed.size_on_disk(entry.path),
            "threads": config.threads,
        }
    )
    path = config.output_dir / f"samples-{entry.key}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i, sample in enumerate(samples):
            f.write(json.dumps(jsonable({"i": i, **sample}), ensure_ascii=False) + "\n")
    del model
    gc.collect()
    return ModelEvaluation(
        key=entry.key,
        measure=measure,
        metrics=metrics,
        signatures=sigs,
        speed=timing,
        samples_path=path,
        num_samples=len(samples),
    )


def run_evaluation(config: EvaluateConfig, reporter: Reporter) -> EvaluateResult:
    """Score every model of ``config`` on its split; write samples under ``output_dir``.

    Raises :class:`Cancelled` between batches when the reporter asks to stop, and
    :class:`EngineError` for what the person can fix (no rows, labels that differ).
    """
    import torch
    import transformers

    from jobs.engine.device import device_description

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(config.seed)
    if not config.models:
        raise EngineError("Choose at least one model to evaluate.", param="models")
    split, rows, labels = load_rows(config)
    if not rows:
        raise EngineError(f"The {split} split has no rows.", code="empty_split", param="split")
    config.output_dir.mkdir(parents=True, exist_ok=True)
    device = device_description()
    total = len(rows) * len(config.models)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        reporter.emit("progress", step=min(done, total), total=total)
        if reporter.should_stop():
            raise Cancelled(f"cancelled after {done} of {total} rows")

    reporter.emit(
        "log",
        message=f"evaluating {len(config.models)} model(s) on {len(rows):,} {split} rows "
        f"on {device}",
        level="info",
    )
    result = EvaluateResult(split=split, device=device, rows=len(rows))
    for entry in config.models:
        reporter.emit("log", message=f"scoring {entry.name or entry.key}", level="info")
        evaluation = evaluate_model(entry, config, rows, labels, tick)
        headline = {k: v for k, v in evaluation.metrics.items() if isinstance(v, int | float)}
        reporter.emit("metrics", model=entry.key, step=done, split=split, final=True, **headline)
        result.evaluations.append(evaluation)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result
