"""A described cluster (TOML) and the dispatch time of one AlltoAll on it, flat or hierarchical.

Ranks 0..N-1 fill nodes of ``gpus_per_node`` GPUs in order. For bytes b[i, j] (``model`` docstring):

- flat (one alltoall over all N ranks, what Megatron's alltoall dispatcher does): each rank's
  off-diagonal bytes are split into intra-node bytes (NVLink) and inter-node bytes (NIC); the model's
  A(S, R) is taken over each domain and the slower domain sets the time:
  T = alpha(N) [+ alpha_nic] + max(A_nvl / B_nvl, A_nic / B_nic).
- hierarchical (node-aware dispatch as in DeepEP's internode mode or HybridEP, N a multiple of the
  node size): stage 1 moves node-to-node bytes over the node's NICs (gpus_per_node of them, one per
  GPU), stage 2 forwards them over NVLink to their GPU; the stages are pipelined, so
  T = alpha(gpus_per_node) + alpha_nic + max(A_node / (gpus_per_node * B_nic), A_fwd / B_nvl).
  From counts the bytes are per-expert copies (no deduplication), so the gain shown is the one of
  the topology alone.

Keys of a cluster file (unknown keys are an error): see ``Cluster``. Presets: presets/*.toml.

Shape legend: N EP ranks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError, did_you_mean
from dodoco.simulate.model import LinkModel, blend, off_diagonal

__all__ = ["PRESETS", "Cluster", "flat_time", "hierarchical_time", "load_cluster", "presets"]

PRESETS = Path(__file__).parent / "presets"


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """A cluster: bandwidths in GB/s per GPU per direction, fixed costs in microseconds."""

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
    imbalance_weight: float = 1.0

    def __post_init__(self):
        if self.gpus_per_node < 1 or self.nvlink_bw <= 0 or self.nic_bw <= 0:
            raise DodocoError(f"cluster {self.name}: gpus_per_node, nvlink_bw and nic_bw must be positive")
        if self.topology not in ("switch", "mesh"):
            raise did_you_mean("topology", self.topology, ["switch", "mesh"])
        if self.topology == "mesh" and not self.nvlink_pair_bw:
            raise DodocoError(f"cluster {self.name}: a mesh topology needs nvlink_pair_bw (GB/s per GPU pair)")
        if not 0.0 <= self.imbalance_weight <= 1.0:
            raise DodocoError(f"cluster {self.name}: imbalance_weight {self.imbalance_weight} must be in [0, 1]")

    def alpha(self, N: int) -> float:
        """Fixed cost (s) of an alltoall over N ranks within a node."""
        return (self.alpha_us + self.alpha_per_peer_us * max(0, N - 1)) * 1e-6

    def nvlink(self, N: int) -> LinkModel:
        pair = self.nvlink_pair_bw * 1e9 if self.topology == "mesh" else None
        return LinkModel(self.alpha(N), self.nvlink_bw * self.nvlink_efficiency * 1e9, self.imbalance_weight, pair)

    def nic(self) -> LinkModel:
        return LinkModel(self.alpha_nic_us * 1e-6, self.nic_bw * self.nic_efficiency * 1e9, self.imbalance_weight)

    def calibrated(self, cal) -> "Cluster":
        """This cluster with alpha, NVLink B_eff and w taken from a ``Calibration`` (measured)."""
        n_max = max(cal.per_n)
        a1 = cal.alpha_at(1)
        per_peer = (cal.alpha_at(n_max) - a1) / max(1, n_max - 1)
        beff = cal.beff_at(self.gpus_per_node)
        return dataclasses.replace(self, alpha_us=a1 * 1e6, alpha_per_peer_us=max(0.0, per_peer * 1e6),
                                   nvlink_bw=beff / 1e9, nvlink_efficiency=1.0, imbalance_weight=cal.w)


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def load_cluster(name_or_path: str) -> Cluster:
    """A preset name (``dgx-h100``, ``dgx-h200``) or a TOML file -> Cluster."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    p = Path(name_or_path)
    if not p.is_file():
        if name_or_path not in presets():
            raise did_you_mean("cluster", name_or_path, presets())
        p = PRESETS / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DodocoError(f"cluster file {p} is not valid TOML ({exc}): fix it or use a preset") from None
    known = {f.name for f in dataclasses.fields(Cluster)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DodocoError(f"cluster file {p} has unknown keys {unknown}: known keys are {sorted(known)}")
    missing = sorted({"name", "gpus_per_node", "nvlink_bw", "nic_bw"} - set(data))
    if missing:
        raise DodocoError(f"cluster file {p} misses {missing}")
    return Cluster(**data)


def _domains(b: np.ndarray, gpn: int) -> tuple[np.ndarray, np.ndarray]:
    N = b.shape[-1]
    node = np.arange(N) // gpn
    same = node[:, None] == node[None, :]
    return b * same, b * ~same


def flat_time(b, cluster: Cluster) -> np.ndarray:
    """Flat alltoall time (s) of byte matrices b[..., N, N] on the cluster."""
    b = np.asarray(b, dtype=np.float64)
    N, gpn = b.shape[-1], cluster.gpus_per_node
    intra, inter = _domains(b, gpn)
    nv = cluster.nvlink(min(N, gpn))
    S, R, pair = off_diagonal(intra)
    t = blend(S, R, nv.w) / nv.beff
    if nv.pair_bw:
        t = np.maximum(t, pair / nv.pair_bw)
    alpha = nv.alpha
    if N > gpn:
        nic = cluster.nic()
        S2, R2, _ = off_diagonal(inter)
        t = np.maximum(t, blend(S2, R2, nic.w) / nic.beff)
        alpha = alpha + nic.alpha
    return alpha + t


def hierarchical_time(b, cluster: Cluster) -> np.ndarray | None:
    """Hierarchical (node-aware) time (s) of b[..., N, N]; None unless N spans whole nodes (> 1)."""
    b = np.asarray(b, dtype=np.float64)
    N, gpn = b.shape[-1], cluster.gpus_per_node
    if N <= gpn or N % gpn:
        return None
    n = N // gpn
    node_b = b.reshape(b.shape[:-2] + (n, gpn, n, gpn)).sum(axis=(-3, -1))  # [..., n, n]
    nv, nic = cluster.nvlink(gpn), cluster.nic()
    Sn, Rn, _ = off_diagonal(node_b)
    t1 = blend(Sn, Rn, nic.w) / (gpn * nic.beff)
    intra, inter = _domains(b, gpn)
    Si, Ri, _ = off_diagonal(intra)
    Se, Re, _ = off_diagonal(inter)
    fwd = (gpn - 1) / gpn  # share of NIC-delivered bytes that land on another GPU of the node
    t2 = blend(Si + fwd * Se, Ri + fwd * Re, nv.w) / nv.beff
    return nv.alpha + nic.alpha + np.maximum(t1, t2)
