"""The trained zoo: five small MoE models, one per sequence mixer, trained on the bundled text.

Each ``zoo:<family>`` keeps its real checkpoint's routed experts E, top-k K, shared experts, routing
function and dense/MoE layer pattern (from ``dodoco.models.tiny``), at hidden size 64 with narrow
experts and a shared 8,192-token BPE (``data/zoo/tokenizer.json``, trained by
``scripts/train_zoo_tokenizer.py`` on the train split), so that all five ship in under 25 MB.
Routers were trained with the load-balancing method of the real model (``ZOO[family].balance``).
These are not the paper's checkpoints: they are small models whose routing is learned, not random.

Files per family under ``dodoco/data/zoo/<family>/``: ``model.safetensors`` (bf16; the Nemotron-H
score-correction bias in fp32), ``config.json`` (the transformers config plus a ``dodoco_zoo``
section: training, data, results) and ``README.md`` (the model card). ``dodoco zoo train`` writes them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dodoco.errors import DodocoError, did_you_mean

TOKENIZER_NAME = "zoo"


@dataclass(frozen=True)
class Balance:
    """A family's load-balancing method, as its real model was trained.

    ``aux``: auxiliary loss ``alpha * mean_g sum_e f_e P_e`` with ``f_e = E/(K T_g) * count_e`` and
    ``P_e`` the mean router softmax over the group's T_g tokens (= 1 when perfectly balanced); groups are
    sequences (``scope="sequence"``, DeepSeek's ``seq_aux``) or the whole step (``"batch"``, Qwen's
    global-batch loss). ``bias``: aux-loss-free: after each step ``b_e += rate * sign(mean_load - load_e)``
    on the router's ``e_score_correction_bias`` (DeepSeek-V3's method, which that bias implements).
    """

    method: str  # "aux" or "bias"
    alpha: float = 0.0  # aux-loss weight in the normalisation above
    scope: str = "batch"  # "sequence" or "batch"
    rate: float = 0.0  # bias update rate
    source: str = ""


@dataclass(frozen=True)
class ZooSpec:
    family: str
    overrides: dict[str, Any] = field(default_factory=dict)  # on top of the tiny config
    balance: Balance = Balance("aux")


# transformers' load_balancing_loss_func is K times the normalisation above, so Qwen's
# router_aux_loss_coef = 0.001 is alpha = 0.001 * K here.
# fmt: off
ZOO: dict[str, ZooSpec] = {
    "deepseek_v2": ZooSpec("deepseek_v2", dict(moe_intermediate_size=32), Balance(
        "aux", alpha=0.001, scope="sequence",
        source="DeepSeek-V2-Lite config: aux_loss_alpha 0.001, seq_aux true (expert-level, per sequence)")),
    "deepseek_moe": ZooSpec("deepseek_moe", dict(moe_intermediate_size=32), Balance(
        "aux", alpha=0.001, scope="sequence",
        source="deepseek-moe-16b config: aux_loss_alpha 0.001, seq_aux true (expert-level, per sequence)")),
    "qwen3_moe": ZooSpec("qwen3_moe", dict(moe_intermediate_size=16), Balance(
        "aux", alpha=0.008, scope="batch",
        source="Qwen3-30B-A3B: global-batch load-balancing loss, router_aux_loss_coef 0.001 (x K=8 here)")),
    "nemotron_h": ZooSpec("nemotron_h", dict(moe_intermediate_size=24), Balance(
        "bias", rate=0.001,
        source="Nemotron-H router: sigmoid + e_score_correction_bias, aux-loss-free bias updates "
               "(DeepSeek-V3's update rate 0.001); no auxiliary loss")),
    "qwen3_5_moe": ZooSpec("qwen3_5_moe", dict(moe_intermediate_size=12), Balance(
        "aux", alpha=0.008, scope="batch",
        source="Qwen3.5-35B-A3B: global-batch load-balancing loss, router_aux_loss_coef 0.001 (x K=8 here)")),
}
# fmt: on


def spec(family: str) -> ZooSpec:
    if family not in ZOO:
        raise did_you_mean("zoo family", family, ZOO)
    return ZOO[family]


def zoo_root() -> Path:
    """The folder that holds the shipped zoo (``dodoco/data/zoo``)."""
    return Path(str(resources.files("dodoco").joinpath("data", "zoo")))


@functools.lru_cache(maxsize=None)
def zoo_tokenizer():
    """The zoo's shared tokenizer as a ``TextTokenizer`` (byte-level BPE, 8,192 tokens)."""
    from tokenizers import Tokenizer

    from dodoco.models.tokenizer import from_tokenizers

    path = zoo_root() / "tokenizer.json"
    if not path.is_file():
        raise DodocoError(f"the zoo tokenizer is missing ({path}): run scripts/train_zoo_tokenizer.py")
    return from_tokenizers(TOKENIZER_NAME, Tokenizer.from_file(str(path)))


def zoo_config(family: str, vocab_size: int):
    """The transformers config of ``zoo:<family>`` (the tiny layout with the zoo's expert width)."""
    from dodoco.models.tiny import tiny_config

    config = tiny_config(family, vocab_size)
    for key, value in spec(family).overrides.items():
        setattr(config, key, value)
    config.output_router_logits = False  # dodoco.zoo computes the family's own balance loss
    return config


def arch_fields(config) -> dict:
    """The config fields that define the architecture (what a checkpoint must agree on)."""
    from dodoco.models.tiny import FAMILIES

    d = config.to_dict()
    family_keys = {k for f in FAMILIES.values() for k in f.config} | {k for z in ZOO.values() for k in z.overrides}
    keys = sorted(family_keys | {"model_type", "vocab_size", "hidden_size"})
    return {k: d.get(k) for k in keys if k in d}


def first_difference(saved: dict, current: dict) -> tuple[str, Any, Any] | None:
    """``(field, saved value, current value)`` of the first field that differs, or None."""
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if (list(a) if isinstance(a, tuple) else a) != (list(b) if isinstance(b, tuple) else b):
            return key, a, b
    return None


def save_weights(model, path: Path) -> None:
    """Write ``model``'s weights as bf16 safetensors (fp32 for score-correction biases), atomically.

    A tied output head is stored once (under the input embedding's name).
    """
    import torch
    from safetensors.torch import save

    from dodoco.store.atomic import write_bytes

    state, seen = {}, {}
    for name, tensor in model.state_dict().items():
        ptr = tensor.data_ptr()
        if ptr in seen and tensor.shape == state[seen[ptr]].shape:
            continue  # tied to an earlier tensor
        seen[ptr] = name
        keep32 = name.endswith("e_score_correction_bias") or not tensor.is_floating_point()
        state[name] = tensor.detach().to("cpu", torch.float32 if keep32 else torch.bfloat16).contiguous()
    # one metadata key, the one transformers looks for: safetensors writes several in a per-process random
    # order, which would break byte identity between two identical runs (what a run was is in config.json)
    write_bytes(Path(path), save(state, metadata={"format": "pt"}))


def load_weights(model, path: Path, family: str) -> None:
    """Load safetensors written by ``save_weights`` into ``model`` (tied weights re-tied)."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    result = model.load_state_dict(state, strict=False)
    tied = {n for n, t in model.state_dict().items() if n not in state}
    if result.unexpected_keys or any("embed" not in n and "lm_head" not in n for n in result.missing_keys):
        raise DodocoError(
            f"zoo weights {path} do not fit the zoo:{family} architecture (missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}): retrain with dodoco zoo train --family {family}"
        )
    assert tied <= set(result.missing_keys)
    model.tie_weights()


def read_card_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise DodocoError(
            f"no zoo model in {folder} (config.json missing): run dodoco zoo train --family "
            f"{Path(folder).name}, or reinstall dodoco"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def build_zoo(family: str, folder: Path | None = None):
    """The trained ``zoo:<family>`` model (float32, CPU, eval mode) and its ``dodoco_zoo`` record."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(folder) if folder else zoo_root() / spec(family).family
    saved = read_card_config(folder)
    config = zoo_config(family, zoo_tokenizer().vocab_size)
    diff = first_difference({k: saved.get(k) for k in arch_fields(config)}, arch_fields(config))
    if diff:
        raise DodocoError(
            f"zoo model {folder} was trained with {diff[0]}={diff[1]!r}, but dodoco's zoo config "
            f"has {diff[0]}={diff[2]!r}: retrain with dodoco zoo train --family {family}"
        )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    load_weights(model, folder / "model.safetensors", family)
    return model.eval(), saved.get("dodoco_zoo", {})


def load_zoo(family: str):
    """``zoo:<family>``: the trained model, the zoo tokenizer and what the manifest records."""
    from dodoco.models.loaded import LoadedModel
    from dodoco.models.tiny import FAMILIES
    from dodoco.store.atomic import sha256_file

    tiny = FAMILIES[spec(family).family]
    model, record = build_zoo(family)
    balance = spec(family).balance
    weights = zoo_root() / spec(family).family / "model.safetensors"
    trained = f"trained on the bundled train text, {record.get('steps')} steps, seed {record.get('seed')}"
    identity = {"digest": "sha256:" + sha256_file(weights), "method": "sha256 of the shipped weights"}
    info = tiny.info(
        "zoo",
        family,
        trained,
        record.get("weights_sha256"),
        balance=balance.method,
        heldout_loss=record.get("results", {}).get("heldout_loss"),
        identity=identity,
    )
    return LoadedModel(model, zoo_tokenizer(), info)
