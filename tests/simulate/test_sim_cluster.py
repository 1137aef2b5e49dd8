"""Cluster files and the flat / hierarchical dispatch times across nodes."""

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.simulate.cluster import Cluster, flat_time, hierarchical_time, load_cluster, presets
from dodoco.simulate.model import predict


def _c(**kw):
    base = dict(name="t", gpus_per_node=2, nvlink_bw=100.0, nic_bw=10.0, nvlink_efficiency=1.0,
                nic_efficiency=1.0, alpha_us=0.0, alpha_per_peer_us=0.0, alpha_nic_us=0.0, imbalance_weight=1.0)
    return Cluster(**{**base, **kw})


def test_presets_load():
    assert {"dgx-h100", "dgx-h200"} <= set(presets())
    c = load_cluster("dgx-h200")
    assert c.gpus_per_node == 8 and c.nvlink_bw == 450.0 and c.topology == "switch"


def test_cluster_file_errors(tmp_path):
    with pytest.raises(DodocoError, match="did you mean 'dgx-h100'"):
        load_cluster("dgx-h10")
    f = tmp_path / "c.toml"
    f.write_text('name = "x"\ngpus_per_node = 4\nnvlink_bw = 1.0\nnic_bw = 1.0\nnvlink_bandwidth = 3\n')
    with pytest.raises(DodocoError, match=r"unknown keys \['nvlink_bandwidth'\]"):
        load_cluster(str(f))
    f.write_text('name = "x"\ngpus_per_node = 4\nnvlink_bw = 1.0\nnic_bw = 1.0\ntopology = "mesh"\n')
    with pytest.raises(DodocoError, match="mesh topology needs nvlink_pair_bw"):
        load_cluster(str(f))


def test_flat_time_one_node_is_the_nvlink_model():
    c = _c(gpus_per_node=4, imbalance_weight=0.5)
    b = np.arange(16, dtype=float).reshape(4, 4) * 1e9
    assert flat_time(b, c) == pytest.approx(predict(b, c.nvlink(4)))


def test_flat_time_two_nodes_hand_case():
    c = _c()  # ranks 0,1 on node 0; 2,3 on node 1; NVLink 100 GB/s, NIC 10 GB/s
    b = np.zeros((4, 4))
    b[0, 1] = 50e9  # intra: 0.5 s over NVLink
    b[0, 2] = 4e9   # inter: 0.4 s over the NIC
    assert flat_time(b, c) == pytest.approx(0.5)
    b[1, 3] = 8e9   # inter: 0.8 s now binds
    assert flat_time(b, c) == pytest.approx(0.8)
    assert hierarchical_time(b[:2, :2], c) is None


def test_hierarchical_spreads_node_traffic_over_nics():
    c = _c()
    b = np.zeros((4, 4))
    b[0, 2] = 8e9  # one GPU's inter-node bytes
    # flat: rank 0's NIC carries 8 GB -> 0.8 s; hierarchical: node 0's 2 NICs carry 4 GB each -> 0.4 s,
    # forwarding on node 1 moves (2-1)/2 of it over NVLink: 4 GB / 100 GB/s = 0.04 s
    assert flat_time(b, c) == pytest.approx(0.8)
    assert hierarchical_time(b, c) == pytest.approx(0.4)


def test_calibrated_cluster_uses_measured_numbers():
    from dodoco.simulate.calibrate import Calibration
    from dodoco.simulate.model import LinkModel

    cal = Calibration({2: LinkModel(20e-6, 200e9, 0.7), 4: LinkModel(24e-6, 250e9, 0.8)}, 0.75, "x", 0.3)
    c = load_cluster("dgx-h200").calibrated(cal)
    nv = c.nvlink(4)
    assert nv.beff == pytest.approx(250e9) and nv.w == 0.75 and nv.alpha == pytest.approx(24e-6)
    assert c.nvlink(8).alpha == pytest.approx(32e-6)
