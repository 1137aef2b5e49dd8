"""The dispatcher registry: name -> the class that fills ``base.Dispatcher`` (imported on demand).

``nccl`` (raw all_to_all_single, the floor), ``megatron`` and ``megatron-allgather`` (Megatron-Core's
token dispatchers), ``nvshmem`` and ``nvshmem-1d`` (PyTorch symmetric-memory all-to-all with
device-side splits), ``deepep`` (DeepEP, when ``deep_ep`` imports). ``all`` names every one.
Names resolve without importing torch; ``get(name)`` imports the class. docs/replay.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from dodoco.errors import DodocoError, did_you_mean
from dodoco.registry import Entry, Registry

__all__ = ["DISPATCHERS", "DispatcherEntry", "expand_names", "get", "missing"]


@dataclass(frozen=True, kw_only=True)
class DispatcherEntry(Entry):
    """A dispatcher: target "module:Class" (torch is imported only when a class is); package: the
    module it needs beyond torch (None: torch alone), checked by ``missing``; install: what to
    install when that module is missing (one line)."""

    package: str | None = None
    install: str = ""


DISPATCHERS = Registry("dispatcher")
for _name, _target, _summary, _package, _install in (
    ("nccl", "nccl:NcclAllToAll", "raw all_to_all_single (the floor)", None, ""),
    (
        "megatron",
        "megatron:MegatronAllToAll",
        "Megatron-Core's alltoall token dispatcher",
        "megatron.core",
        "pip install 'dodoco[megatron]' (megatron-core; Megatron-Core 0.19 also needs triton)",
    ),
    (
        "megatron-allgather",
        "megatron:MegatronAllGather",
        "Megatron-Core's allgather token dispatcher",
        "megatron.core",
        "pip install 'dodoco[megatron]' (megatron-core)",
    ),
    ("nvshmem", "nvshmem:NvshmemAllToAll2D", "PyTorch symmetric-memory all_to_all_vdev_2d", None, ""),
    ("nvshmem-1d", "nvshmem:NvshmemAllToAllV", "PyTorch symmetric-memory all_to_all_vdev", None, ""),
    (
        "deepep",
        "deepep:DeepEP",
        "DeepEP (when deep_ep imports)",
        "deep_ep",
        "install DeepEP (github.com/deepseek-ai/DeepEP, built against this torch and NVSHMEM)",
    ),
):
    DISPATCHERS.add(
        DispatcherEntry(
            name=_name,
            target=f"dodoco.replay.dispatchers.{_target}",
            summary=_summary,
            package=_package,
            install=_install,
        )
    )


def expand_names(names) -> tuple[str, ...]:
    """Dispatcher names as given ('all' = every one; comma lists split) -> registry names, in order."""
    out = []
    for n in names:
        for part in str(n).split(","):
            part = part.strip()
            if not part:
                continue
            if part == "all":
                out += DISPATCHERS.names()
            elif part in DISPATCHERS:
                out.append(part)
            else:
                raise did_you_mean("dispatcher", part, [*DISPATCHERS, "all"])
    if not out:
        raise DodocoError("no dispatcher named: give --dispatcher nccl (or a comma list, or 'all')")
    return tuple(dict.fromkeys(out))


def missing(name: str) -> str | None:
    """None when the package a dispatcher needs imports here, else one line: the error and what to install."""
    entry = DISPATCHERS[name]
    if entry.package is None:
        return None
    try:
        importlib.import_module(entry.package)
    except Exception as exc:  # absent, or present but broken (a missing dependency of its own)
        return (
            f"--dispatcher {name} needs {entry.package}, which does not import here ({type(exc).__name__}: "
            f"{exc}): {entry.install}"
        )
    return None


def get(name: str):
    """The dispatcher class registered under ``name``."""
    return DISPATCHERS.get(name)
