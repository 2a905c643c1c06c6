"""The compact student: an int8 export for CPU serving, loaded without unpickling anything.

Every Linear layer is dynamically quantized (`torch.ao.quantization.quantize_dynamic`, int8
weights with a scale per output channel, activations quantized at run time), and the vocabulary
embeddings are stored as int8 with a scale per row (the decoder's, tied to its output layer,
shares that layer's int8 weights). Everything is written as plain tensors in a safetensors file
plus a JSON manifest, and the quantized modules are rebuilt on load, so loading never unpickles
anything (a quantized model's own state_dict holds packed objects that
`torch.load(weights_only=True)` refuses). `core.student.predict.load_student_model` loads either kind;
core.results.model_export writes an export and measures it against the fp32 student.
"""

from __future__ import annotations

import contextlib
import functools
import json
import warnings
from pathlib import Path

from core.kernel.errors import ConfigError

INT8_FORMAT = "distill-int8-dynamic"
INT8_WEIGHTS = "model.int8.safetensors"
INT8_MANIFEST = "quantization.json"
EMBEDDING_MIN_ROWS = 1000          # embeddings this large (vocabularies) are stored as int8; positions stay fp32


@contextlib.contextmanager
def _quiet():
    """torch.ao.quantization warns that it is deprecated on every call; the API still works."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        yield


def quantize_model(model) -> tuple[dict, dict]:
    """(tensors, manifest) of an int8 export of an fp32 seq2seq model: every Linear dynamically
    quantized (per output channel), vocabulary embeddings as int8 rows, the rest in fp32."""
    import copy

    import torch
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with _quiet():
        qmodel = quantize_dynamic(copy.deepcopy(model).eval(), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                  dtype=torch.qint8)
    fp32_modules = dict(model.named_modules())
    tensors: dict[str, torch.Tensor] = {}
    linear: dict[str, dict] = {}
    by_weight: dict[int, str] = {}   # storage of an fp32 weight -> the Linear quantized from it
    for name, mod in qmodel.named_modules():
        if isinstance(mod, QLinear):
            weight, bias = mod.weight(), mod.bias()
            tensors[f"q.{name}.int8"] = weight.int_repr().contiguous()
            tensors[f"q.{name}.scale"] = weight.q_per_channel_scales().to(torch.float32).contiguous()
            tensors[f"q.{name}.zero_point"] = weight.q_per_channel_zero_points().to(torch.int32).contiguous()
            if bias is not None:
                tensors[f"q.{name}.bias"] = bias.detach().to(torch.float32).clone().contiguous()
            linear[name] = {"in_features": mod.in_features, "out_features": mod.out_features, "bias": bias is not None}
            by_weight[fp32_modules[name].weight.data_ptr()] = name
    embedding: dict[str, dict] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Embedding) and mod.num_embeddings >= EMBEDDING_MIN_ROWS:
            source = by_weight.get(mod.weight.data_ptr())  # tied to an output layer: share its int8 rows
            if source is None:
                source = name
                weight = mod.weight.detach().float()
                scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
                tensors[f"q.{name}.int8"] = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
                tensors[f"q.{name}.scale"] = scale.contiguous()
                tensors[f"q.{name}.zero_point"] = torch.zeros(mod.num_embeddings, dtype=torch.int32)
            embedding[name] = {"tensors": source, "padding_idx": mod.padding_idx}
    quantized = {f"{n}.weight" for n in list(linear) + list(embedding)} | {f"{n}.bias" for n in linear}
    for key, value in model.state_dict().items():
        if key not in quantized:
            tensors[f"f.{key}"] = value.detach().clone().contiguous()
    manifest = {"format": INT8_FORMAT, "version": 1, "weights": INT8_WEIGHTS, "linear": linear,
                "embedding": embedding, "torch": torch.__version__,
                "scheme": "Linear: dynamic quantization, int8 weights with a scale per output channel, activations "
                          "quantized at run time; vocabulary embeddings: int8 with a scale per row"}
    return tensors, manifest


def write_int8(model_dir: str | Path, dest: str | Path) -> dict:
    """Write the int8 weights and manifest of the fp32 student in `model_dir` into the folder
    `dest` (its config, tokenizer and train_config are copied by the caller)."""
    from safetensors.torch import save_file
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir)).eval()
    tensors, manifest = quantize_model(model)
    dest = Path(dest)
    save_file(tensors, str(dest / INT8_WEIGHTS), metadata={"format": INT8_FORMAT})
    (dest / INT8_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


@functools.cache
def _int8_embedding_class():
    import torch

    class Int8Embedding(torch.nn.Module):
        """An embedding table held as int8 rows with a scale (and zero point) per row."""

        def __init__(self, int8: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                     padding_idx: int | None = None):
            super().__init__()
            self.num_embeddings, self.embedding_dim = int8.shape
            self.padding_idx = padding_idx
            self.register_buffer("int8", int8, persistent=False)
            self.register_buffer("scale", scale.float(), persistent=False)
            self.register_buffer("zero_point", zero_point.float(), persistent=False)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            rows = torch.nn.functional.embedding(ids, self.int8).float()
            return (rows - self.zero_point[ids].unsqueeze(-1)) * self.scale[ids].unsqueeze(-1)

        def extra_repr(self) -> str:
            return f"{self.num_embeddings}, {self.embedding_dim}, int8"

    return Int8Embedding


def _per_channel_qint8(int8, scale, zero_point):
    """A qint8 weight (a scale and zero point per output channel) from its stored integers."""
    import torch

    make = getattr(torch, "_make_per_channel_quantized_tensor", None)
    if make is not None:
        return make(int8, scale, zero_point, 0)
    # exact too: requantizing the dequantized integers gives the same integers back
    values = (int8.double() - zero_point[:, None].double()) * scale[:, None]
    return torch.quantize_per_channel(values.float(), scale, zero_point, 0, torch.qint8)


def _set_module(model, name: str, module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def load_int8(path: Path):
    """Rebuild an int8 export: the architecture from config.json (no weight initialisation),
    quantized modules from the int8 tensors, the rest from fp32 tensors. Nothing is unpickled."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from transformers import (
        AutoConfig,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        GenerationConfig,
    )

    try:
        manifest = json.loads((path / INT8_MANIFEST).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path / INT8_MANIFEST} is not valid JSON ({exc.msg}).") from exc
    if manifest.get("format") != INT8_FORMAT or manifest.get("version") != 1:
        raise ConfigError(f"{path} is not an int8 export this version can read "
                          f"(format {manifest.get('format')!r}, version {manifest.get('version')!r}).")
    weights = path / INT8_WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"{path} has no int8 weights file ({INT8_WEIGHTS}).")
    try:
        tensors = load_file(str(weights))
        config = AutoConfig.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, SafetensorError) as exc:
        raise ConfigError(f"Cannot load the int8 student in {path}: {exc}") from exc
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers: initialise (slower, same result once loaded)
        from contextlib import nullcontext as no_init_weights
    with no_init_weights():
        model = AutoModelForSeq2SeqLM.from_config(config)
    model.eval()

    def tensor(key: str) -> torch.Tensor:
        if key not in tensors:
            raise ConfigError(f"{weights.name} lacks the tensor {key!r}; the export is incomplete.")
        return tensors[key]

    # the fp32 part first (the quantized modules are still the float ones, left unset), then swap them in
    rest = {k[2:]: v for k, v in tensors.items() if k.startswith("f.")}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    quantized = {f"{n}.weight" for n in list(manifest["linear"]) + list(manifest["embedding"])}
    missing = [k for k in missing if k not in quantized and not (k.endswith(".bias") and k[:-5] in manifest["linear"])]
    if missing or unexpected:
        raise ConfigError(f"The int8 weights in {path} do not fit its config.json "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]}).")
    with _quiet():
        for name, spec in manifest["linear"].items():
            q = QLinear(spec["in_features"], spec["out_features"], bias_=spec["bias"], dtype=torch.qint8)
            scale, zero_point = tensor(f"q.{name}.scale").double(), tensor(f"q.{name}.zero_point").long()
            qweight = _per_channel_qint8(tensor(f"q.{name}.int8"), scale, zero_point)
            q.set_weight_bias(qweight, tensor(f"q.{name}.bias") if spec["bias"] else None)
            _set_module(model, name, q)
    embedding_cls = _int8_embedding_class()
    for name, spec in manifest["embedding"].items():
        src = spec["tensors"]
        _set_module(model, name, embedding_cls(tensor(f"q.{src}.int8"), tensor(f"q.{src}.scale"),
                                               tensor(f"q.{src}.zero_point"), spec.get("padding_idx")))
    if (path / "generation_config.json").exists():
        model.generation_config = GenerationConfig.from_pretrained(str(path))
    return model, tokenizer
