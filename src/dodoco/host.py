"""The host a measurement was made on: GPUs, interconnect, driver and library versions.

A calibration belongs to a host (docs/dispatch.md, "What carries across machines"): the same GPU's
dispatch fits from an 8-GPU host miss a 4-GPU host by 10-12%. ``host_identity()`` records the host
``dodoco calibrate`` runs on; ``parse_topology`` reads ``nvidia-smi topo -m`` (a pure function,
tested on captured outputs); ``compare`` says how two hosts differ, machine first (GPU, count,
interconnect), software second (driver, CUDA, NCCL, torch); ``host_from_replay`` recovers the
identity an older replay file records (its device block and topology text).

Identity dict (``dodoco.host/1``): ``machine`` (a label, e.g. ``h200-x4``), ``gpu`` (name), ``gpu_key``
(``h200``), ``gpu_count``, ``topology`` (``parse_topology``), ``driver``, ``cuda``, ``nccl``,
``torch``, ``hostname``, ``date``, ``dodoco``, ``git``, ``recorded`` (how it was obtained).
"""

from __future__ import annotations

import re
import subprocess

__all__ = [
    "HOST_SCHEMA",
    "compare",
    "describe",
    "gpu_key",
    "host_from_replay",
    "host_identity",
    "machine_kind",
    "parse_topology",
]

HOST_SCHEMA = "dodoco.host/1"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: PCIe path kinds of ``nvidia-smi topo -m`` (its legend), nearest first
PCIE = ("PIX", "PXB", "PHB", "NODE", "SYS")
#: NVLink links one Hopper or Blackwell GPU has at most: more per pair than this over several peers is a switch
MAX_DIRECT_LINKS = 18


def _summary(kind: str, nv: list[int], pcie: list[str], n: int) -> str:
    if kind == "single-gpu":
        return "one GPU (no peer link)"
    if kind == "unknown":
        return "interconnect unknown (nvidia-smi topo -m not readable)"
    if kind == "pcie":
        return f"PCIe only ({'/'.join(pcie)} between GPUs, no NVLink)"
    links = "/".join(f"NV{k}" for k in nv)
    if kind == "nvlink-partial":
        return f"NVLink on some pairs ({links}), PCIe ({'/'.join(pcie)}) on the others"
    switch = n > 2 and len(nv) == 1 and nv[0] * (n - 1) > MAX_DIRECT_LINKS
    return f"{links} between every pair" + (" (NVSwitch)" if switch else "")


def parse_topology(text: str | None) -> dict:
    """``nvidia-smi topo -m`` output -> {"kind", "gpus", "nvlinks", "pcie", "matrix", "summary"}.

    kind: "nvlink-all-pairs" (every GPU pair joined by NV#), "nvlink-partial", "pcie" (no NV#),
    "single-gpu", "unknown" (no GPU matrix found); nvlinks: sorted distinct link counts #; pcie:
    the PCIe path kinds seen between GPUs; matrix: the GPU x GPU cells ("X" on the diagonal). NIC
    rows and columns, affinity columns, colour codes and the legend are ignored.
    """
    lines = [_ANSI.sub("", ln).rstrip() for ln in (text or "").splitlines()]
    at = next(
        (
            i
            for i, ln in enumerate(lines)
            if re.match(r"^GPU0\b", ln.strip()) and not re.match(r"^GPU0\s+X\b", ln.strip())
        ),
        None,
    )
    header = [] if at is None else lines[at].split("\t") if "\t" in lines[at] else lines[at].split()
    gpus = [c.strip() for c in header if re.fullmatch(r"GPU\d+", c.strip())]
    n = len(gpus)
    matrix = []
    for ln in lines[(at or 0) + 1 :]:
        cells = ln.split()
        if cells and cells[0] in gpus and len(cells) > n:
            matrix.append([c.upper() for c in cells[1 : n + 1]])
    if n == 0 or len(matrix) != n:
        return {
            "kind": "unknown",
            "gpus": 0,
            "nvlinks": [],
            "pcie": [],
            "matrix": [],
            "summary": _summary("unknown", [], [], 0),
        }
    off = [matrix[i][j] for i in range(n) for j in range(n) if i != j]
    nv = sorted({int(c[2:]) for c in off if re.fullmatch(r"NV\d+", c)})
    pcie = [p for p in PCIE if p in off]
    n_nv = sum(1 for c in off if c.startswith("NV"))
    kind = "single-gpu" if n == 1 else "nvlink-all-pairs" if n_nv == len(off) else "nvlink-partial" if n_nv else "pcie"
    return {
        "kind": kind,
        "gpus": n,
        "nvlinks": nv,
        "pcie": pcie,
        "matrix": matrix,
        "summary": _summary(kind, nv, pcie, n),
    }


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _driver() -> str | None:
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.strip().splitlines()[0].strip() if out and out.strip() else None


def machine_kind(gpu: str, count: int) -> str:
    """A machine label from its GPU and count: 'NVIDIA H200', 4 -> 'h200-x4'."""
    return f"{gpu_key(gpu)}-x{int(count)}"


def host_identity(machine: str | None = None) -> dict:
    """The identity of this host (GPUs visible to torch; none: the CPU) -> dict (module docstring)."""
    import datetime
    import platform

    import torch

    from dodoco.provenance import versions

    v = versions()
    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    gpu = torch.cuda.get_device_name(0) if count else "cpu"
    topo = parse_topology(_run(["nvidia-smi", "topo", "-m"])) if count else parse_topology(None)
    if count == 1 and topo["kind"] == "unknown":
        topo = {**topo, "kind": "single-gpu", "gpus": 1, "summary": _summary("single-gpu", [], [], 1)}
    nccl = ".".join(map(str, torch.cuda.nccl.version())) if count else None
    return {
        "schema": HOST_SCHEMA,
        "machine": machine or (machine_kind(gpu, count) if count else "cpu"),
        "gpu": gpu,
        "gpu_key": gpu_key(gpu),
        "gpu_count": count,
        "topology": topo,
        "driver": _driver() if count else None,
        "cuda": torch.version.cuda if count else None,
        "nccl": nccl,
        "torch": torch.__version__,
        "hostname": platform.node(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dodoco": v["dodoco"],
        "git": v["git"],
        "recorded": "measured by dodoco calibrate (torch, nvidia-smi)",
    }


def host_from_replay(obj: dict, machine: str | None = None) -> dict:
    """The host identity an older replay or bench file records: its ``device`` block (name, count, CUDA,
    NCCL, torch) and ``topology`` text; what it does not record (driver, hostname) is None."""

    dev = obj.get("device") or {}
    gpu, count = str(dev.get("name", "unknown")), int(dev.get("count") or 0)
    return {
        "schema": HOST_SCHEMA,
        "machine": machine or obj.get("machine") or machine_kind(gpu, count),
        "gpu": gpu,
        "gpu_key": gpu_key(gpu),
        "gpu_count": count,
        "topology": parse_topology(obj.get("topology")),
        "driver": None,
        "cuda": dev.get("cuda"),
        "nccl": dev.get("nccl"),
        "torch": dev.get("torch"),
        "hostname": None,
        "date": str(obj.get("created", ""))[:10] or None,
        "dodoco": None,
        "git": None,
        "recorded": "from the replay file's device block and nvidia-smi topo -m text",
    }


def describe(host: dict | None) -> str:
    """One line: 'h200-x4 (4 x NVIDIA H200, NV18 between every pair (NVSwitch); NCCL 2.28.9, torch 2.11)'."""
    if not host:
        return "host not recorded"
    sw = ", ".join(f"{k} {host[k]}" for k in ("driver", "nccl", "torch") if host.get(k))
    topo = (host.get("topology") or {}).get("summary", "interconnect not recorded")
    return f"{host.get('machine', '?')} ({host.get('gpu_count', '?')} x {host.get('gpu', '?')}, {topo}" + (
        f"; {sw})" if sw else ")"
    )


def _topo_key(host: dict) -> tuple:
    t = host.get("topology") or {}
    return t.get("kind", "unknown"), tuple(t.get("nvlinks") or ())


def compare(made: dict | None, here: dict | None) -> tuple[list[str], list[str]]:
    """How the host a calibration was ``made`` on differs from ``here`` -> (machine differences,
    software differences), each a list of short phrases; ([], []) when they are the same machine kind
    with the same software. An unknown side compares as different only where both sides say."""
    if not made or not here:
        return [], []
    hw = []
    known = lambda k: made.get(k) is not None and here.get(k) is not None  # noqa: E731
    if known("gpu_key") and made["gpu_key"] != here["gpu_key"]:
        hw.append(f"GPU {made.get('gpu')} there, {here.get('gpu')} here")
    if known("gpu_count") and made["gpu_count"] != here["gpu_count"]:
        hw.append(f"{made.get('gpu_count')} GPUs there, {here.get('gpu_count')} GPUs here")
    a, b = _topo_key(made), _topo_key(here)
    if "unknown" not in (a[0], b[0]) and a != b:
        hw.append(f"interconnect {made['topology']['summary']} there, {here['topology']['summary']} here")
    sw = [
        f"{k} {made[k]} there, {here[k]} here"
        for k in ("driver", "cuda", "nccl", "torch")
        if made.get(k) and here.get(k) and made[k] != here[k]
    ]
    return hw, sw


def gpu_key(name: str) -> str:
    """Short key of a GPU from its name: 'NVIDIA H100 80GB HBM3' -> 'h100', 'NVIDIA H200' -> 'h200',
    'NVIDIA A100-SXM4-80GB' -> 'a100'; 'cpu' stays 'cpu'. Never the memory type (both say HBM3)."""
    m = re.search(r"(?<![A-Z0-9])(G?[A-Z]{1,2}\d{2,4}[A-Z]?)(?![A-Z0-9])", str(name).upper().replace("-", " "))
    if m and not m.group(1).startswith("HBM"):
        return m.group(1).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return slug or "unknown"
