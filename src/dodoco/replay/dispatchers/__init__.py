"""The dispatcher registry: name -> the class that fills ``base.Dispatcher`` (imported on demand).

``nccl`` (raw all_to_all_single, the floor), ``megatron`` and ``megatron-allgather`` (Megatron-Core's
token dispatchers), ``nvshmem`` and ``nvshmem-1d`` (PyTorch symmetric-memory all-to-all with
device-side splits), ``deepep`` (DeepEP, when ``deep_ep`` imports). ``all`` names every one.
Names resolve without importing torch; ``get(name)`` imports the class. docs/replay.md.
"""

from __future__ import annotations

import importlib

from dodoco.errors import DodocoError, did_you_mean

__all__ = ["DISPATCHERS", "expand_names", "get", "missing"]

#: name -> "module:Class" (torch is imported only when a class is).
DISPATCHERS = {
    "nccl": "dodoco.replay.dispatchers.nccl:NcclAllToAll",
    "megatron": "dodoco.replay.dispatchers.megatron:MegatronAllToAll",
    "megatron-allgather": "dodoco.replay.dispatchers.megatron:MegatronAllGather",
    "nvshmem": "dodoco.replay.dispatchers.nvshmem:NvshmemAllToAll2D",
    "nvshmem-1d": "dodoco.replay.dispatchers.nvshmem:NvshmemAllToAllV",
    "deepep": "dodoco.replay.dispatchers.deepep:DeepEP",
}

#: What to install for a dispatcher whose package is missing (one line each).
INSTALL = {
    "megatron": "pip install 'dodoco[megatron]' (megatron-core; Megatron-Core 0.19 also needs triton)",
    "megatron-allgather": "pip install 'dodoco[megatron]' (megatron-core)",
    "deepep": "install DeepEP (github.com/deepseek-ai/DeepEP, built against this torch and NVSHMEM)",
}

#: The module each dispatcher needs, checked by ``missing`` (None: torch alone).
_PACKAGES = {"megatron": "megatron.core", "megatron-allgather": "megatron.core", "deepep": "deep_ep"}


def expand_names(names) -> tuple[str, ...]:
    """Dispatcher names as given ('all' = every one; comma lists split) -> registry names, in order."""
    out = []
    for n in names:
        for part in str(n).split(","):
            part = part.strip()
            if not part:
                continue
            if part == "all":
                out += list(DISPATCHERS)
            elif part in DISPATCHERS:
                out.append(part)
            else:
                raise did_you_mean("dispatcher", part, [*DISPATCHERS, "all"])
    if not out:
        raise DodocoError("no dispatcher named: give --dispatcher nccl (or a comma list, or 'all')")
    return tuple(dict.fromkeys(out))


def missing(name: str) -> str | None:
    """None when the package a dispatcher needs imports here, else one line: the error and what to install."""
    mod = _PACKAGES.get(name)
    if mod is None:
        return None
    try:
        importlib.import_module(mod)
    except Exception as exc:  # absent, or present but broken (a missing dependency of its own)
        return f"--dispatcher {name} needs {mod}, which does not import here ({type(exc).__name__}: {exc}): " \
               f"{INSTALL[name]}"
    return None


def get(name: str):
    """The dispatcher class registered under ``name``."""
    if name not in DISPATCHERS:
        raise did_you_mean("dispatcher", name, DISPATCHERS)
    mod, cls = DISPATCHERS[name].split(":")
    return getattr(importlib.import_module(mod), cls)
