"""int8 models stored as safetensors: quantize, save, and rebuild on load.

A quantized model folder is a normal Hugging Face folder (``config.json``, tokenizer)
whose ``model.safetensors`` holds, for each quantized module ``m``:

- Linear layers (dynamic int8, per output channel, symmetric): ``m.weight`` int8
  ``(out, in)``, ``m.weight_scale`` float64 ``(out,)``, ``m.weight_zero_point`` int64
  ``(out,)`` and ``m.bias`` float;
- the embedding table (weight-only int8, per row): ``m.weight`` int8 ``(V, D)`` and
  ``m.weight_scale`` float32 ``(V,)``;

every other tensor as it was, plus ``quantization.json`` naming the modules and the
scheme. Nothing is pickled (``torch.save`` of a quantized model would be), so the folder
is as safe to load as any other; :func:`load_quantized` builds the architecture from its
config, swaps in the quantized modules and sets their int8 weights exactly.

Backend: ``torch.ao.quantization.quantize_dynamic``. torchao's int8 configs are the
newer API, but on CPU they measured several times slower here (``bench/quantize_backends.py``:
MiniLM batch 32, 2 cores: 1.8 s vs 11.6 s for torchao's dynamic int8), so the deprecated
but present torch.ao path is the one that makes models faster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobs.engine.base import EngineError

QUANT_FILE = "quantization.json"
FORMAT = "llmweb-int8/1"
LINEAR_SCHEME = "dynamic int8 activations, int8 weights per output channel (symmetric)"
EMBEDDING_SCHEME = "weight-only int8 per row (symmetric), dequantised on lookup"


def is_quantized(folder: str | Path) -> bool:
    return (Path(folder) / QUANT_FILE).is_file()


def read_quant_config(folder: str | Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(folder) / QUANT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EngineError(f"{QUANT_FILE} is not readable ({e}).", code="bad_weights") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EngineError(f"{QUANT_FILE} is not a {FORMAT} description.", code="bad_weights")
    return data


def _int8_embedding_class() -> type:
    import torch
    from torch import nn

    class Int8Embedding(nn.Module):
        """An embedding table held as int8 rows and a scale per row.

        Lookup gathers the int8 rows of the batch and scales them: (B, T) ids ->
        (B, T, D) floats, so only the rows used are ever dequantised.
        """

        def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Any = None):
            super().__init__()
            self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
            self.padding_idx = padding_idx
            self.register_buffer(
                "weight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8)
            )
            self.register_buffer("weight_scale", torch.ones(num_embeddings))

        @classmethod
        def from_float(cls, emb: nn.Embedding) -> Int8Embedding:
            w = emb.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0  # (V,)
            out = cls(emb.num_embeddings, emb.embedding_dim, emb.padding_idx)
            out.weight.copy_(torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
            out.weight_scale.copy_(scale)
            return out

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.weight[ids].to(self.weight_scale.dtype) * self.weight_scale[ids, None]

    return Int8Embedding


_EMBEDDING_CLASS: type | None = None


def int8_embedding_class() -> type:
    """The module class (built lazily so importing this file does not import torch)."""
    global _EMBEDDING_CLASS
    if _EMBEDDING_CLASS is None:
        _EMBEDDING_CLASS = _int8_embedding_class()
    return _EMBEDDING_CLASS


def _set_module(model: Any, name: str, module: Any) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)


def embedding_names(model: Any) -> list[str]:
    """Input embedding tables that can be int8 on their own.

    A table tied to the output layer (GPT-2, T5's shared vocabulary) is also a matmul
    weight; it stays float, or the LM head would lose its tie.
    """
    from torch import nn

    emb = model.get_input_embeddings()
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(emb, nn.Embedding):
        return []
    if out_emb is not None and out_emb.weight is emb.weight:
        return []
    return [n for n, m in model.named_modules() if m is emb]


def quantize_model(model: Any, *, embeddings: bool = True) -> tuple[Any, dict[str, Any]]:
    """int8 copy of a float model: dynamic Linear layers, optionally an int8 embedding.

    Returns ``(model, description)``; the description is what ``quantization.json``
    stores. Runs on CPU (torch.ao's dynamic kernels are CPU kernels).
    """
    import torch
    from torch import nn
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = model.to("cpu").float().eval()
    linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    if not linears:
        raise EngineError("The model has no Linear layers to quantize.", code="nothing_to_do")
    tied = embedding_names(model) if embeddings else []
    qmodel = quantize_dynamic(
        model, dict.fromkeys(linears, per_channel_dynamic_qconfig), dtype=torch.qint8
    )
    for name in tied:
        _set_module(qmodel, name, int8_embedding_class().from_float(qmodel.get_submodule(name)))
    description = {
        "format": FORMAT,
        "backend": "torch.ao.quantization.quantize_dynamic",
        "linear": linears,
        "linear_scheme": LINEAR_SCHEME,
        "embedding": tied,
        "embedding_scheme": EMBEDDING_SCHEME if tied else None,
    }
    return qmodel, description


def quantized_tensors(model: Any, description: dict[str, Any]) -> dict[str, Any]:
    """Every tensor of a quantized model, int8 weights unpacked into plain tensors."""
    import torch

    linears = set(description["linear"])
    out: dict[str, Any] = {}
    for name in linears:
        weight, bias = model.get_submodule(name)._weight_bias()
        out[f"{name}.weight"] = weight.int_repr().contiguous()
        out[f"{name}.weight_scale"] = weight.q_per_channel_scales().to(torch.float64).contiguous()
        out[f"{name}.weight_zero_point"] = (
            weight.q_per_channel_zero_points().to(torch.int64).contiguous()
        )
        if bias is not None:
            out[f"{name}.bias"] = bias.detach().contiguous()
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor) or "_packed_params" in key:
            continue
        if _in_any(key, list(linears)):
            continue
        # A tied weight is stored once (safetensors refuses shared memory) and re-tied on load.
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        out[key] = tensor.detach().contiguous()
    return out


def save_quantized(model: Any, tokenizer: Any, description: dict[str, Any], out: Path) -> None:
    """Write the folder: config, tokenizer, int8 safetensors, ``quantization.json``."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(out))
    if getattr(model, "generation_config", None) is not None and model.can_generate():
        model.generation_config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    save_file(quantized_tensors(model, description), str(out / "model.safetensors"))
    (out / QUANT_FILE).write_text(json.dumps(description, indent=2), encoding="utf-8")


def _in_any(key: str, modules: list[str]) -> bool:
    owner = key.rpartition(".")[0]
    return any(owner == n or owner.startswith(f"{n}.") for n in modules)


def load_quantized(folder: Path, cls: Any, config: Any) -> Any:
    """Rebuild a quantized model from its folder (the loader calls this).

    The float architecture is built from ``config`` with no checkpoint, the same modules
    are swapped for their int8 versions, then every stored tensor is set: int8 weights
    exactly, through ``set_weight_bias``, the rest through ``load_state_dict``.
    """
    import torch
    from safetensors.torch import load_file
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    description = read_quant_config(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    model = cls.from_config(config).eval()
    linears = list(description.get("linear") or [])
    try:
        model = quantize_dynamic(
            model, dict.fromkeys(linears, per_channel_dynamic_qconfig), dtype=torch.qint8
        )
        for name in description.get("embedding") or []:
            float_emb = model.get_submodule(name)
            shell = int8_embedding_class()(
                float_emb.num_embeddings, float_emb.embedding_dim, float_emb.padding_idx
            )
            _set_module(model, name, shell)
        for name in linears:
            qweight = torch._make_per_channel_quantized_tensor(
                tensors.pop(f"{name}.weight").to(torch.int8),
                tensors.pop(f"{name}.weight_scale").to(torch.float64),
                tensors.pop(f"{name}.weight_zero_point").to(torch.int64),
                0,
            )
            model.get_submodule(name).set_weight_bias(qweight, tensors.pop(f"{name}.bias", None))
    except (AttributeError, KeyError, RuntimeError) as e:
        raise EngineError(
            f"The quantized weights do not fit the architecture: {e}", code="load_failed"
        ) from e
    # Set tensors one by one: load_state_dict would hand each quantized Linear its own
    # (pickle-era) state keys, which this format does not have.
    expected = {
        k: v
        for k, v in model.state_dict(keep_vars=True).items()
        if isinstance(v, torch.Tensor) and not _in_any(k, linears) and "_packed_params" not in k
    }
    unexpected = sorted(set(tensors) - set(expected))
    stored_ids = {id(expected[k]) for k in tensors if k in expected}
    # A tied weight is stored under one of its names; the others are the same Parameter.
    missing = sorted(k for k in expected if k not in tensors and id(expected[k]) not in stored_ids)
    if unexpected or missing:
        raise EngineError(
            "The quantized weights do not fit the architecture "
            f"(unexpected {unexpected[:3]}, missing {missing[:3]}).",
            code="load_failed",
        )
    with torch.no_grad():
        for key, value in tensors.items():
            target = expected[key]
            if target.shape != value.shape:
                raise EngineError(
                    f"{key} has shape {tuple(value.shape)}, the architecture "
                    f"{tuple(target.shape)}.",
                    code="load_failed",
                )
            target.copy_(value)
    return model.eval()
