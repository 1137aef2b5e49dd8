"""Host identity: `nvidia-smi topo -m` parsed on captured and hand-written outputs, hosts compared."""

from pathlib import Path

import pytest

from dodoco.host import compare, describe, host_from_replay, machine_kind, parse_topology

TOPO = Path(__file__).parent / "fixtures" / "topo"


def _topo(name):
    return parse_topology((TOPO / name).read_text())


@pytest.mark.parametrize("name, n", [("nvidia-h200-x2.txt", 2), ("nvidia-h200-x4.txt", 4), ("nvidia-h200-x8.txt", 8)])
def test_captured_h200_machines_are_nv18_between_every_pair(name, n):
    t = _topo(name)
    assert t["kind"] == "nvlink-all-pairs" and t["gpus"] == n and t["nvlinks"] == [18] and t["pcie"] == []
    assert [row[i] for i, row in enumerate(t["matrix"])] == ["X"] * n  # the diagonal, colour codes stripped
    assert all(c == "NV18" for i, row in enumerate(t["matrix"]) for j, c in enumerate(row) if i != j)
    # more links per pair than one GPU has, over several peers: a switch; two GPUs cannot tell
    assert t["summary"] == "NV18 between every pair" + (" (NVSwitch)" if n > 2 else "")


def test_nic_columns_and_rows_are_not_gpus():
    """NIC columns hold PXB/SYS: reading them as GPU pairs would call this node partly PCIe."""
    t = _topo("a100-x8-nics.txt")
    assert t["kind"] == "nvlink-all-pairs" and t["gpus"] == 8 and t["nvlinks"] == [12] and t["pcie"] == []
    assert len(t["matrix"]) == 8 and all(len(r) == 8 for r in t["matrix"])


def test_pcie_only_and_bridged_pairs_and_one_gpu():
    p = _topo("pcie-x4.txt")
    assert p["kind"] == "pcie" and p["nvlinks"] == [] and p["pcie"] == ["PIX", "NODE", "SYS"]
    assert p["matrix"][2] == ["SYS", "SYS", "X", "NODE"]
    b = _topo("bridged-pairs-x4.txt")
    assert b["kind"] == "nvlink-partial" and b["nvlinks"] == [4] and b["pcie"] == ["PHB"]
    assert "some pairs" in b["summary"]
    one = _topo("one-gpu.txt")
    assert one["kind"] == "single-gpu" and one["gpus"] == 1 and one["matrix"] == [["X"]]


@pytest.mark.parametrize("text", [None, "", "nvidia-smi: command not found", "GPU0 X\n"])
def test_unreadable_output_is_unknown_not_an_error(text):
    t = parse_topology(text)
    assert t["kind"] == "unknown" and t["gpus"] == 0 and "unknown" in t["summary"]


def _host(**kw):
    base = {
        "machine": "h200-x4",
        "gpu": "NVIDIA H200",
        "gpu_key": "h200",
        "gpu_count": 4,
        "topology": _topo("nvidia-h200-x4.txt"),
        "driver": "570.1",
        "cuda": "13.0",
        "nccl": "2.28.9",
        "torch": "2.11.0",
    }
    return {**base, **kw}


def test_compare_names_machine_then_software_differences():
    assert compare(_host(), _host()) == ([], [])
    hw, sw = compare(_host(), _host(gpu="NVIDIA H100 80GB HBM3", gpu_key="h100", nccl="2.27.3"))
    assert hw == ["GPU NVIDIA H200 there, NVIDIA H100 80GB HBM3 here"] and sw == ["nccl 2.28.9 there, 2.27.3 here"]
    hw, _ = compare(_host(gpu_count=8, topology=_topo("nvidia-h200-x8.txt")), _host())
    assert hw == ["8 GPUs there, 4 GPUs here"]  # the same NV18 fabric is not a topology difference
    hw, _ = compare(_host(), _host(topology=_topo("pcie-x4.txt")))
    assert len(hw) == 1 and hw[0].startswith("interconnect NV18 between every pair (NVSwitch) there, PCIe only")
    # what one side does not know is not a difference
    assert compare(_host(driver=None, topology=parse_topology(None)), _host()) == ([], [])
    assert compare(None, _host()) == ([], [])


def test_host_of_an_older_replay_file_and_its_description():
    obj = {
        "machine": "nvidia-h200-x8",
        "created": "2026-11-22T10:06:29",
        "device": {"name": "NVIDIA H200", "count": 8, "cuda": "13.0", "nccl": "2.28.9", "torch": "2.11.0+cu130"},
        "topology": (TOPO / "nvidia-h200-x8.txt").read_text(),
    }
    h = host_from_replay(obj)
    assert (h["machine"], h["gpu_key"], h["gpu_count"], h["driver"], h["date"]) == (
        "nvidia-h200-x8",
        "h200",
        8,
        None,
        "2026-11-22",
    )
    assert describe(h) == (
        "nvidia-h200-x8 (8 x NVIDIA H200, NV18 between every pair (NVSwitch); nccl 2.28.9, torch 2.11.0+cu130)"
    )
    assert machine_kind("NVIDIA H100 80GB HBM3", 2) == "h100-x2"
    assert describe(None) == "host not recorded"
