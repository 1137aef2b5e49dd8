"""Load a model by name: ``tiny:<family>``, ``zoo:<family>``, a local path or a hub id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dodoco.errors import DodocoError, did_you_mean, refuse
from dodoco.models.loaded import LoadedModel

DTYPES = ("auto", "float32", "bfloat16", "float16")


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
    identity = {
        "digest": f"tiny:{family} random weights, seed {seed}",
        "method": "seeded random initialisation of the built-in config",
    }
    info = spec.info("tiny", family, f"random, seed {seed}", None, identity=identity)
    return LoadedModel(model, tokenizer, info)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _config(name: str, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        remote = f"model '{name}' ships remote code: rerun with --trust-remote-code if you trust its source"
        unread = f"cannot read the config of '{name}': {_first_line(exc)}"
        raise refuse(exc, "trust_remote_code", remote, unread) from None
    except OSError as exc:
        raise DodocoError(
            f"model '{name}' is neither a local directory nor a reachable hub id "
            f"({_first_line(exc)}): pass a path with config.json, or tiny:/zoo: names"
        ) from None


def load_pretrained(name: str, dtype: str, device: str, trust_remote_code: bool) -> LoadedModel:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dodoco.models.identity import check_checkpoint, check_tokenizer, checkpoint_identity
    from dodoco.models.tokenizer import from_transformers

    config = _config(name, trust_remote_code)
    local = Path(name).is_dir()
    if local:
        check_checkpoint(name)  # weights and tokenizer files present, before anything heavy
    torch_dtype = _torch_dtype(dtype)
    kwargs: dict[str, Any] = dict(trust_remote_code=trust_remote_code, dtype=torch_dtype or "auto")
    if device == "auto-map":
        kwargs["device_map"] = "auto"
    try:
        model = AutoModelForCausalLM.from_pretrained(name, config=config, **kwargs)
        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except DodocoError:
        raise
    except Exception as exc:  # a third-party checkpoint fails in many ways: truncated shards, bad headers
        raise DodocoError(
            f"cannot load '{name}' ({_first_line(exc)}): check that its weight and tokenizer files "
            "are complete (re-download or re-copy them)"
        ) from None
    if device != "auto-map":
        model = model.to(_resolve_device(device))
    check_tokenizer(name, len(tok), model.get_input_embeddings().num_embeddings)
    revision = getattr(config, "_commit_hash", None)
    identity = (
        checkpoint_identity(name)
        if local
        else {"digest": f"{name}@{revision or 'unpinned'}", "method": "hub commit of the checkpoint"}
    )
    info = dict(
        source="pretrained",
        family=config.model_type,
        revision=revision,
        identity=identity,
        transformers=transformers.__version__,
        trust_remote_code=trust_remote_code,
    )
    return LoadedModel(model.eval(), from_transformers(name, tok), info)


def context_length(model) -> int | None:
    """The longest sequence the model's config allows (max_position_embeddings), or None when unstated."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def load_model(
    name: str, *, dtype: str = "auto", device: str = "cpu", trust_remote_code: bool = False, seed: int = 0
) -> LoadedModel:
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
        id=name,
        architecture=type(model).__name__,
        model_type=getattr(model.config, "model_type", None),
        adapter=adapter.name,
        E=layers[0].num_experts,
        K=layers[0].top_k,
        L=len(layers),
        moe_layer_ids=[layer.layer_id for layer in layers],
        dtype=str(param.dtype).replace("torch.", ""),
        device=str(param.device),
        tokenizer=loaded.tokenizer.name,
        vocab_size=loaded.tokenizer.vocab_size,
        context=context_length(model),
        **expert_shape(model.config),
    )
    return loaded


def expert_shape(config) -> dict:
    """{hidden_size, moe_intermediate_size, expert_act} of a routed expert where the config says (for
    the bytes an expert weighs when it moves between ranks, and its compute); {} when it does not.
    expert_act: "relu2" for Nemotron-H's ungated squared-ReLU experts (``mlp_hidden_act``), else "swiglu"."""
    text = getattr(config, "get_text_config", lambda: config)()
    H = getattr(text, "hidden_size", None)
    I = next(
        (getattr(text, k) for k in ("moe_intermediate_size", "expert_intermediate_size") if getattr(text, k, None)),
        None,
    )
    act = "relu2" if getattr(text, "mlp_hidden_act", None) == "relu2" else "swiglu"
    return {"hidden_size": int(H), "moe_intermediate_size": int(I), "expert_act": act} if H and I else {}
