"""A described cluster (TOML) and the time of one AlltoAll on it, flat or hierarchical.

Ranks 0..N-1 fill nodes of ``gpus_per_node`` GPUs in order. For bytes b[i, j] (rank i to rank j;
the diagonal stays local), ``AlltoallTimer`` times one alltoall of one dispatcher and phase:

- NVLink domain (within a node): with a calibration, the fitted model of that dispatcher and phase
  (``Calibration.lookup``: the calibrated N, else the nearest below) applied to each node's block
  of b, the slowest node setting the time; without one, the nominal datasheet bandwidth
  (``nvlink_bw x nvlink_efficiency``) under the naive max model, labelled uncalibrated.
- NIC domain (across nodes, never measured here, always nominal): the naive max model over each
  rank's inter-node bytes at ``nic_bw x nic_efficiency`` plus ``alpha_nic_us``.
- flat (one alltoall over all N ranks): T = max(T_nvlink, T_nic).
- hierarchical (node-aware dispatch as DeepEP internode / HybridEP; N a multiple of the node size):
  stage 1 moves node-to-node bytes over the node's ``gpus_per_node`` NICs; stage 2 forwards what
  arrived over NVLink: GPU k of a node received 1/G of every inter-node byte bound for that node
  and forwards it to its GPU j, so stage 2 is the alltoall of intra[k, j] + R_in[j] / G within the
  node; the stages are pipelined, T = max(stage 1, stage 2).

Cluster files (TOML; unknown keys are an error): see ``Cluster``. Presets: presets/<name>.toml, each
with its calibration as data beside it (presets/<name>.calibration.json) where one was measured.

Shape legend: N EP ranks, G GPUs per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dodoco.config import Config, read_toml
from dodoco.errors import DodocoError, did_you_mean
from dodoco.simulate.forms import evaluate, nominal

__all__ = ["PRESETS", "AlltoallTimer", "Cluster", "load_cluster", "preset_calibration", "presets"]

PRESETS = Path(__file__).parent / "presets"
REMOVED = {
    "imbalance_weight": "the imbalance response is no longer hand-set: it comes from a calibration "
    "(presets/<name>.calibration.json or --calibration FILE)"
}


@dataclass(frozen=True, kw_only=True)
class Cluster(Config):
    """A cluster: bandwidths in GB/s per GPU per direction, fixed costs in microseconds (nominal)."""

    name: str
    gpus_per_node: int
    nvlink_bw: float
    nic_bw: float
    description: str = ""
    gpu: str = ""
    topology: str = "switch"  # "switch" (NVSwitch) or "mesh" (direct GPU-GPU links)
    nvlink_pair_bw: float | None = None  # mesh only: GB/s of one GPU pair's links
    nvlink_efficiency: float = 0.8
    nic_efficiency: float = 0.8
    alpha_us: float = 15.0
    alpha_per_peer_us: float = 1.0
    alpha_nic_us: float = 25.0

    def __post_init__(self):
        if self.gpus_per_node < 1 or self.nvlink_bw <= 0 or self.nic_bw <= 0:
            raise DodocoError(f"cluster {self.name}: gpus_per_node, nvlink_bw and nic_bw must be positive")
        if self.topology not in ("switch", "mesh"):
            raise did_you_mean("topology", self.topology, ["switch", "mesh"])
        if self.topology == "mesh" and not self.nvlink_pair_bw:
            raise DodocoError(f"cluster {self.name}: a mesh topology needs nvlink_pair_bw (GB/s per GPU pair)")

    def alpha(self, N: int) -> float:
        """Nominal fixed cost (s) of an alltoall over N ranks within a node."""
        return (self.alpha_us + self.alpha_per_peer_us * max(0, N - 1)) * 1e-6

    def nominal_nvlink(self) -> str:
        return (
            f"nominal (uncalibrated): {self.nvlink_bw:g} GB/s x {self.nvlink_efficiency:g}, "
            f"alpha {self.alpha_us:g} us + {self.alpha_per_peer_us:g} us per peer, naive max, the same for "
            "every dispatcher"
        )

    def nominal_nic(self) -> str:
        return (
            f"nominal (not measured): {self.nic_bw:g} GB/s x {self.nic_efficiency:g} per GPU, {self.alpha_nic_us:g} us"
        )


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def load_cluster(name_or_path: str) -> Cluster:
    """A preset name (``dgx-h100``, ``dgx-h200``) or a TOML file -> Cluster."""
    p = Path(name_or_path)
    if not p.is_file():
        if name_or_path not in presets():
            raise did_you_mean("cluster", name_or_path, presets())
        p = PRESETS / f"{name_or_path}.toml"
    data = read_toml(p)
    for key, why in REMOVED.items():
        if key in data:
            raise DodocoError(f"cluster file {p}: {key} is not a cluster key any more: {why}")
    return Cluster.from_dict(data, source=f"cluster file {p}")


def preset_calibration(name: str):
    """The calibration shipped beside a preset (presets/<name>.calibration.json), or None."""
    from dodoco.simulate.calibration import load_calibration

    p = PRESETS / f"{name}.calibration.json"
    return load_calibration(p) if p.is_file() else None


def _blocks(b: np.ndarray, G: int) -> np.ndarray:
    """b[..., N, N] -> the node diagonal blocks [..., N/G, G, G] (N a multiple of G)."""
    n = b.shape[-1] // G
    r = b.reshape(b.shape[:-2] + (n, G, n, G))
    return np.stack([r[..., k, :, k, :] for k in range(n)], axis=-3)


class AlltoallTimer:
    """Times alltoalls on a cluster, calibrated (a ``Calibration``) or nominal (None)."""

    def __init__(self, cluster: Cluster, calibration=None):
        self.cluster, self.calibration = cluster, calibration

    def nvlink(self, b: np.ndarray, dispatcher: str, phase: str) -> tuple[np.ndarray, str]:
        """Time (s) of the within-node alltoall(s) of b[..., n, G', G'] blocks (max over blocks) and a label."""
        c = self.cluster
        if self.calibration is None:  # naive max; a mesh adds the pair term: max_terms with k = w = 1
            n, bw = b.shape[-1], c.nvlink_bw * c.nvlink_efficiency * 1e9
            bal = nominal(c.alpha(n), bw)
            t = (
                evaluate("max_terms", b, bal, (1.0, 1.0, bw / ((n - 1) * c.nvlink_pair_bw * 1e9)))
                if c.topology == "mesh" and n > 1
                else evaluate("naive_max", b, bal)
            )
            return t.max(-1), c.nominal_nvlink()
        fit, note = self.calibration.lookup(b.shape[-1], dispatcher, phase)
        label = f"calibrated: {fit.label()}" + (f" ({note})" if note else "")
        return fit.predict(b).max(-1), label

    def nic(self, inter: np.ndarray) -> np.ndarray:
        c = self.cluster
        return evaluate("naive_max", inter, nominal(c.alpha_nic_us * 1e-6, c.nic_bw * c.nic_efficiency * 1e9))

    def flat(self, b, dispatcher: str = "nccl", phase: str = "dispatch") -> tuple[np.ndarray, dict]:
        """Flat alltoall time (s) of b[..., N, N] -> (t[...], labels of the terms used)."""
        b = np.asarray(b, dtype=np.float64)
        N, G = b.shape[-1], self.cluster.gpus_per_node
        if N <= G:
            t, label = self.nvlink(b[..., None, :, :], dispatcher, phase)
            return t, {"nvlink": label, "nic": "-"}
        if N % G:
            raise DodocoError(f"EP {N} spans nodes of {G} GPUs but is not a multiple of {G}: use whole nodes")
        node = np.arange(N) // G
        inter = b * (node[:, None] != node[None, :])
        t_nv, label = self.nvlink(_blocks(b, G), dispatcher, phase)
        return np.maximum(t_nv, self.nic(inter)), {"nvlink": label, "nic": self.cluster.nominal_nic()}

    def hierarchical(self, b, dispatcher: str = "nccl", phase: str = "dispatch") -> np.ndarray | None:
        """Hierarchical time (s) of b[..., N, N]; None unless N spans whole nodes (more than one)."""
        b = np.asarray(b, dtype=np.float64)
        N, G = b.shape[-1], self.cluster.gpus_per_node
        if N <= G or N % G:
            return None
        n = N // G
        node_b = b.reshape(b.shape[:-2] + (n, G, n, G)).sum(axis=(-3, -1))  # [..., n, n]
        c = self.cluster
        t1 = evaluate("naive_max", node_b, nominal(c.alpha_nic_us * 1e-6, G * c.nic_bw * c.nic_efficiency * 1e9))
        node = np.arange(N) // G
        r_in = (b * (node[:, None] != node[None, :])).sum(-2)  # [..., N] inter-node bytes bound for j
        fwd = _blocks(b, G) + r_in.reshape(r_in.shape[:-1] + (n, 1, G)) / G
        t2, _ = self.nvlink(fwd, dispatcher, phase)
        return np.maximum(t1, t2)
