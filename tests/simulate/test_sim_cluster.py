"""Cluster files, preset calibrations, and flat / hierarchical alltoall times across nodes."""

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.simulate.calibration import Calibration, Fit
from dodoco.simulate.cluster import AlltoallTimer, Cluster, load_cluster, preset_calibration, presets
from dodoco.simulate.forms import Balanced


def _c(**kw):
    base = dict(
        name="t",
        gpus_per_node=2,
        nvlink_bw=100.0,
        nic_bw=10.0,
        nvlink_efficiency=1.0,
        nic_efficiency=1.0,
        alpha_us=0.0,
        alpha_per_peer_us=0.0,
        alpha_nic_us=0.0,
    )
    return Cluster(**{**base, **kw})


def test_presets_load_and_carry_calibrations_as_data():
    assert {"dgx-h100", "dgx-h200"} <= set(presets())
    c = load_cluster("dgx-h200")
    assert c.gpus_per_node == 8 and c.nvlink_bw == 450.0 and c.topology == "switch"
    cal = preset_calibration("dgx-h200")
    assert cal is not None and {f.N for f in cal.fits} >= {2, 4, 8} and cal.dodoco and cal.created
    assert all(s["sha256"] and s["device"] == "NVIDIA H200" for s in cal.sources)
    assert preset_calibration("dgx-h100") is None  # nothing measured on H100: uncalibrated, and said so


def test_cluster_file_errors(tmp_path):
    with pytest.raises(DodocoError, match="did you mean 'dgx-h100'"):
        load_cluster("dgx-h10")
    f = tmp_path / "c.toml"
    f.write_text('name = "x"\ngpus_per_node = 4\nnvlink_bw = 1.0\nnic_bw = 1.0\nnvlink_bandwidth = 3\n')
    with pytest.raises(
        DodocoError, match=r"unknown key nvlink_bandwidth in cluster file .*known keys are name, gpus_per_node"
    ):
        load_cluster(str(f))
    f.write_text('name = "x"\ngpus_per_node = 4\nnvlink_bw = 1.0\nnic_bw = 1.0\nimbalance_weight = 0.55\n')
    with pytest.raises(DodocoError, match="imbalance_weight is not a cluster key any more: .* calibration"):
        load_cluster(str(f))
    f.write_text('name = "x"\ngpus_per_node = 4\nnvlink_bw = 1.0\nnic_bw = 1.0\ntopology = "mesh"\n')
    with pytest.raises(DodocoError, match="mesh topology needs nvlink_pair_bw"):
        load_cluster(str(f))
    f.write_text('name = "x"\ngpus_per_node = "eight"\nnvlink_bw = 1.0\nnic_bw = 1.0\n')
    with pytest.raises(DodocoError, match="--gpus-per-node 'eight' must be an integer"):
        load_cluster(str(f))
    f.write_text('name = "x"\nnvlink_bw = 1.0\nnic_bw = 1.0\n')
    with pytest.raises(DodocoError, match="missing --gpus-per-node in cluster file"):
        load_cluster(str(f))


def test_nominal_one_node_is_the_naive_max_model():
    b = np.arange(16, dtype=float).reshape(4, 4) * 1e9
    t, labels = AlltoallTimer(_c(gpus_per_node=4, alpha_us=10.0)).flat(b)
    # row sums 6, 22, 38, 54 GB minus the diagonal 0, 5, 10, 15: sends 6, 17, 28, 39 GB; receives
    # 24, 23, 22, 21 GB -> the busiest rank moves 39 GB at 100 GB/s, plus alpha
    assert float(t) == pytest.approx(10e-6 + 0.39) and labels["nic"] == "-"
    assert labels["nvlink"].startswith("nominal (uncalibrated)")


def test_flat_two_nodes_hand_case():
    timer = AlltoallTimer(_c())  # ranks 0,1 on node 0; 2,3 on node 1; NVLink 100 GB/s, NIC 10 GB/s
    b = np.zeros((4, 4))
    b[0, 1] = 50e9  # intra: 0.5 s over NVLink
    b[0, 2] = 4e9  # inter: 0.4 s over the NIC
    t, labels = timer.flat(b)
    assert float(t) == pytest.approx(0.5) and labels["nic"].startswith("nominal (not measured)")
    b[1, 3] = 8e9  # inter: 0.8 s now binds
    assert float(timer.flat(b)[0]) == pytest.approx(0.8)
    assert timer.hierarchical(b[:2, :2]) is None


def test_hierarchical_spreads_node_traffic_over_nics():
    timer = AlltoallTimer(_c())
    b = np.zeros((4, 4))
    b[0, 2] = 8e9  # one GPU's inter-node bytes
    # flat: rank 0's NIC carries 8 GB -> 0.8 s; hierarchical: node 0's 2 NICs carry 4 GB each -> 0.4 s;
    # on node 1, GPU 3 received half of it and forwards 4 GB to GPU 2 over NVLink: 0.04 s
    assert float(timer.flat(b)[0]) == pytest.approx(0.8)
    assert float(timer.hierarchical(b)) == pytest.approx(0.4)
    timer = AlltoallTimer(_c(nic_bw=1000.0))  # fast NICs: the NVLink forwarding stage binds
    assert float(timer.hierarchical(b)) == pytest.approx(0.04)


def _cal(N=2):
    bal = Balanced(1e-3, np.array([1e6]), np.array([100e9]))  # 1 ms + bytes / 100 GB/s
    fit = Fit("m", "Fake", N, "nccl", "dispatch", "blend", bal, np.array([27.0]), np.array([[0.5]]))
    return Calibration((fit,), ({"path": "x.json", "created": "2026-01-01"},))


def test_calibrated_timer_applies_the_fit_per_node_block():
    timer = AlltoallTimer(_c(), _cal())
    b = np.zeros((4, 4))
    b[0, 1], b[1, 0] = 40e9, 20e9  # node 0: S = [40, 20], R = [20, 40]: M = 40 GB, m = 30 GB
    t, labels = timer.flat(b)
    # blend w = 0.5: 1 ms + (30 + 0.5 * 10) GB / 100 GB/s = 0.351 s; node 1 idle; no NIC bytes
    assert float(t) == pytest.approx(0.351) and labels["nvlink"] == "calibrated: m N=2 nccl dispatch: blend"
    b[2, 0] = 5e9  # 5 GB across nodes at 10 GB/s = 0.5 s (nominal NIC) now binds
    assert float(timer.flat(b)[0]) == pytest.approx(0.5)
    t8, labels8 = AlltoallTimer(_c(gpus_per_node=4), _cal()).flat(np.zeros((4, 4)))
    assert "fit of N=2 used for N=4" in labels8["nvlink"]
    with pytest.raises(DodocoError, match="no combine fit"):
        timer.flat(b, phase="combine")


def test_nominal_mesh_adds_the_pair_term():
    timer = AlltoallTimer(_c(gpus_per_node=4, topology="mesh", nvlink_pair_bw=10.0))
    b = np.zeros((4, 4))
    b[0, 1] = 30e9  # one pair: 0.3 s at the GPU's 100 GB/s, but 3 s over that pair's 10 GB/s links
    assert float(timer.flat(b)[0]) == pytest.approx(3.0)
    b = np.full((4, 4), 1e9)  # 3 GB sent per rank (0.03 s), 1 GB per pair over 10 GB/s: 0.1 s binds
    assert float(timer.flat(b)[0]) == pytest.approx(0.1)
