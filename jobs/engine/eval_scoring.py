"""Per-task scoring for the evaluate engine: each function takes a loaded model and the
split's rows and returns ``(metrics, signatures, samples)``.

Classification reads class probabilities (labels matched by name), language models their
likelihood (:mod:`jobs.engine.lm_scoring`), generation models their text against the
target (sacrebleu, rouge-score). The per-row samples are what the samples list shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from jobs.engine.base import EngineError
from jobs.engine.eval_config import EvaluateConfig

LN2 = math.log(2.0)


def package_version(package: str) -> str:
    """The installed version of a metric library, for signatures."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


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
    signature = f"sklearn:{package_version('scikit-learn')}|ece:bins=10,equal-width|argmax"
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


MAX_SLICES = 50


def slice_report(
    samples: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    *,
    column: str,
    measure: str,
    warn_gap: float,
) -> dict[str, Any]:
    """Metrics broken down by the values of ``column`` (data bias), with the gap between
    the best and the worst slice and whether it passes ``warn_gap``.

    ``samples[i]`` scores ``rows[i]``. Per slice: accuracy (classification), mean
    sentence chrF++/100 (generation) or token-weighted perplexity (language models);
    the gap is absolute for the first two and relative ((worst - best) / worst) for
    perplexity. The most frequent ``MAX_SLICES`` values are kept.
    """
    if not rows or column not in rows[0]:
        raise EngineError(
            f"The evaluation rows have no column {column!r}; processed datasets keep "
            f"{', '.join(rows[0]) if rows else 'no columns'}.",
            code="invalid_param",
            param="slice_column",
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for sample, row in zip(samples, rows, strict=True):
        groups.setdefault(str(row.get(column)), []).append(sample)
    kept = sorted(groups.items(), key=lambda kv: -len(kv[1]))[:MAX_SLICES]
    values = []
    for value, group in kept:
        if measure == "classification":
            metric, name = sum(bool(s["correct"]) for s in group) / len(group), "accuracy"
        elif measure == "generation":
            metric, name = sum(s["score"] or 0.0 for s in group) / len(group) / 100, "chrf"
        else:
            tokens = sum(s.get("tokens") or 0 for s in group)
            nll = sum((s["loss"] or 0.0) * (s.get("tokens") or 0) for s in group)
            metric = math.exp(min(nll / tokens, 700)) if tokens else float("nan")
            name = "perplexity"
        values.append({"value": value, "n": len(group), name: metric})
        for sample in group:
            sample["slice"] = value
    scores = [v[name] for v in values if math.isfinite(v[name])]
    if len(scores) < 2:
        gap = 0.0
    elif name == "perplexity":
        gap = (max(scores) - min(scores)) / max(scores)
    else:
        gap = max(scores) - min(scores)
    return {
        "column": column,
        "metric": name,
        "values": values,
        "gap": gap,
        "warn_gap": warn_gap,
        "warning": gap > warn_gap,
    }
