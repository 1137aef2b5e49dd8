"""Routed-expert shapes of the paper's models (from their config.json), and a run's own shape.

``SHAPES`` names the routed-expert shape (hidden size H, expert width I, activation: SwiGLU, or
Nemotron's ungated ReLU^2) of each model the paper studied and of DeepSeek-V3; ``shape_of_run``
gives the shape a run's model computes with: the model's own (recorded by observe), or for a zoo or
tiny model the real model it stands for (its own width is a toy's), labelled either way.
"""

from __future__ import annotations

from dodoco.compute.features import ACTS, ExpertShape
from dodoco.errors import DodocoError, did_you_mean

__all__ = ["SHAPES", "resolve_shape", "shape_of_run"]

#: name -> (ExpertShape, models with that routed-expert shape)
SHAPES = {
    "deepseek-v3": (ExpertShape(7168, 2048), "deepseek-ai/DeepSeek-V3, DeepSeek-R1"),
    "deepseek-v2-lite": (ExpertShape(2048, 1408), "deepseek-ai/DeepSeek-V2-Lite"),
    "deepseek-moe-16b": (ExpertShape(2048, 1408), "deepseek-ai/deepseek-moe-16b-base"),
    "qwen3-30b-a3b": (ExpertShape(2048, 768), "Qwen/Qwen3-30B-A3B"),
    "qwen3.5-35b-a3b": (ExpertShape(2048, 512), "Qwen/Qwen3.5-35B-A3B"),
    "nemotron-30b": (
        ExpertShape(2688, 1856, act="relu2"),
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16 (ungated ReLU^2 experts)",
    ),
}
_STANDS_FOR = {
    "Qwen/Qwen3-30B-A3B": "qwen3-30b-a3b",
    "deepseek-ai/DeepSeek-V2-Lite": "deepseek-v2-lite",
    "deepseek-ai/deepseek-moe-16b-base": "deepseek-moe-16b",
    "Qwen/Qwen3.5-35B-A3B": "qwen3.5-35b-a3b",
    "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": "nemotron-30b",
}


def resolve_shape(name: str | None = None, hidden: int | None = None, width: int | None = None, act: str | None = None):
    """(ExpertShape, label) from --shape NAME or --hidden H --width I (both, not one) [--act ACT]."""
    if name:
        if hidden or width or act:
            raise DodocoError("give --shape NAME or --hidden H --width I [--act ACT], not both")
        if name not in SHAPES:
            raise did_you_mean("expert shape", name, SHAPES)
        shape, models = SHAPES[name]
        return shape, f"{name} ({models})"
    if (hidden is None) != (width is None):
        raise DodocoError("give both --hidden H and --width I (the routed expert's hidden size and width)")
    if hidden is None:
        if act:
            raise DodocoError(f"--act {act} needs --hidden H and --width I (a named --shape carries its own)")
        return None, ""
    shape = ExpertShape(int(hidden), int(width), act=act or "swiglu")
    return shape, f"{shape.label()} (given)"


def shape_of_run(run):
    """(ExpertShape, label) a run's model computes with, or (None, why) when the run does not say."""
    model = run.manifest.to_dict().get("model", {}) if hasattr(run, "manifest") else {}
    details = model.get("details") or {}
    stands = details.get("stands_for")
    if stands in _STANDS_FOR and str(run.model).split(":")[0] in ("zoo", "tiny"):
        name = _STANDS_FOR[stands]
        shape = SHAPES[name][0]
        return shape, f"{name} ({shape.label()}): {run.model} stands for {stands} (the toy's own width is not used)"
    h, i = details.get("hidden_size"), details.get("moe_intermediate_size")
    act = details.get("expert_act", "swiglu")  # runs observed before it was recorded: SwiGLU, as then
    if isinstance(h, int) and isinstance(i, int) and h > 0 and i > 0 and act in ACTS:
        shape = ExpertShape(h, i, act=act)
        return shape, f"{shape.label()} (the model's own, from the run's manifest)"
    return None, f"run {run.path} does not record its expert shape: give --shape NAME or --hidden H --width I"
