"""Load a model by name: ``tiny:<family>``, ``zoo:<family>``, a local path or a hub id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dodoco.errors import DodocoError, did_you_mean
from dodoco.models.tokenizer import TextTokenizer

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class LoadedModel:
    """A model ready to observe, its tokenizer and what the manifest records about it."""

    model: Any
    tokenizer: TextTokenizer
    info: dict = field(default_factory=dict)


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise did_you_mean("dtype", dtype, DTYPES)
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DodocoError(f"device '{device}' asked for but no CUDA GPU is visible: use --device cpu")
    return device


def load_tiny(family: str, seed: int = 0) -> LoadedModel:
    from dodoco.models.tiny import FAMILIES, build_tiny
    from dodoco.models.tokenizer import bundled

    if family not in FAMILIES:
        raise did_you_mean("tiny family", family, FAMILIES)
    spec = FAMILIES[family]
    tokenizer = bundled(spec.tokenizer)
    model = build_tiny(family, tokenizer.vocab_size, seed=seed)
    info = dict(source="tiny", family=family, mixer=spec.mixer, stands_for=spec.real_model,
                routing=spec.routing, shared_experts=spec.shared_experts, weights=f"random, seed {seed}",
                revision=None)
    return LoadedModel(model, tokenizer, info)


def load_pretrained(name: str, dtype: str, device: str, trust_remote_code: bool) -> LoadedModel:
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from dodoco.models.tokenizer import from_transformers

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise DodocoError(f"model '{name}' ships remote code: rerun with --trust-remote-code "
                              "if you trust its source") from None
        raise DodocoError(f"cannot read the config of '{name}': {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise DodocoError(f"model '{name}' is neither a local directory nor a reachable hub id "
                          f"({str(exc).splitlines()[0]}): pass a path with config.json, or tiny:/zoo: names") from None
    torch_dtype = _torch_dtype(dtype)
    kwargs: dict[str, Any] = dict(trust_remote_code=trust_remote_code, dtype=torch_dtype or "auto")
    if device == "auto-map":
        kwargs["device_map"] = "auto"
    model = AutoModelForCausalLM.from_pretrained(name, config=config, **kwargs)
    if device != "auto-map":
        model = model.to(_resolve_device(device))
    tokenizer = from_transformers(name, AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code))
    info = dict(source="pretrained", family=config.model_type, revision=getattr(config, "_commit_hash", None),
                transformers=transformers.__version__, trust_remote_code=trust_remote_code)
    return LoadedModel(model.eval(), tokenizer, info)


def load_model(name: str, *, dtype: str = "auto", device: str = "cpu", trust_remote_code: bool = False,
               seed: int = 0) -> LoadedModel:
    """Load ``name`` and describe it (E, K, MoE layer ids, dtype, device) in ``info``."""
    import torch

    from dodoco.models.adapters import find_moe_layers

    scheme, _, rest = name.partition(":")
    if scheme == "tiny" and rest:
        loaded = load_tiny(rest, seed=seed)
    elif scheme == "zoo" and rest:
        from dodoco.models.zoo import load_zoo

        loaded = load_zoo(rest)
    else:
        loaded = load_pretrained(name, dtype, device, trust_remote_code)
    model = loaded.model
    if scheme in ("tiny", "zoo"):
        torch_dtype = _torch_dtype(dtype)
        model = model.to(device=_resolve_device(device), dtype=torch_dtype or torch.float32)
        loaded.model = model
    adapter, layers = find_moe_layers(model)
    param = next(model.parameters())
    loaded.info.update(
        id=name, architecture=type(model).__name__, model_type=getattr(model.config, "model_type", None),
        adapter=adapter.name, E=layers[0].num_experts, K=layers[0].top_k, L=len(layers),
        moe_layer_ids=[layer.layer_id for layer in layers], dtype=str(param.dtype).replace("torch.", ""),
        device=str(param.device), tokenizer=loaded.tokenizer.name, vocab_size=loaded.tokenizer.vocab_size,
    )
    return loaded
