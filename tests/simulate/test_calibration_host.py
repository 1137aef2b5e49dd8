"""Whose machine a calibration is: the host in calibration files, and every simulate output saying it."""

import json
from pathlib import Path

import numpy as np
import pytest

from dodoco.cli import main
from dodoco.compute.model import ComputeModel
from dodoco.findings.synthetic import write_counts_run
from dodoco.simulate import hostcheck
from dodoco.simulate.calibration import Calibration, Fit, load_calibration
from dodoco.simulate.cluster import load_cluster, preset_calibration
from dodoco.simulate.forms import Balanced

TOPO = Path(__file__).parent.parent / "fixtures" / "topo"


def _host(gpu="NVIDIA H200", key="h200", count=4, topo="nvidia-h200-x4.txt", nccl="2.28.9"):
    from dodoco.host import parse_topology

    return {
        "machine": f"{key}-x{count}",
        "gpu": gpu,
        "gpu_key": key,
        "gpu_count": count,
        "topology": parse_topology((TOPO / topo).read_text()),
        "driver": "570.1",
        "cuda": "13.0",
        "nccl": nccl,
        "torch": "2.11.0",
    }


#: 0.01 ms per launch + 1 ms per padded GFLOP (tile 16): a compute model by hand
H200_GROUPED = ("h200", "NVIDIA H200", "grouped_mm", "linear", 16, 128, 132)  # gpu, device, kernel, form, tiles, SMs
MODEL = ComputeModel(*H200_GROUPED, np.array([0.01, 0.0, 0.0, 1.0, 0.0]), {"torch": "2.11", "date": "2031-01-01"})


def _cal_file(tmp_path, host, dry_run=False, compute=True) -> Path:
    bal = Balanced(1e-3, np.array([1e6]), np.array([100e9]))
    fits = [
        Fit(host["machine"], host["gpu"], n, "nccl", ph, "blend", bal, np.array([27.0]), np.array([[0.5]]))
        for n in (2, 4)
        for ph in ("dispatch", "combine")
    ]
    cal = Calibration.new(
        fits,
        [{"path": "parts/dispatch-nccl.json", "created": "2031-01-01T00:00:00"}],
        host=host,
        compute={"grouped_mm": MODEL.to_dict()} if compute else {},
        dry_run=dry_run,
    )
    p = tmp_path / ("dry.json" if dry_run else "cal.json")
    p.write_text(json.dumps(cal.to_dict()))
    return p


def _runs(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    counts = rng.poisson(np.r_[40.0, np.full(15, 10.0)], (16, 2, 16)).astype(np.uint32)
    write_counts_run(tmp_path / "runs" / "prose-L64", counts, model="m", condition="prose", seq_len=64, K=2)
    return tmp_path / "runs"


def test_the_shipped_preset_records_its_host_and_old_files_read_with_theirs(tmp_path):
    cal = preset_calibration("dgx-h200")
    assert (cal.host["machine"], cal.host["gpu_key"], cal.host["gpu_count"]) == ("nvidia-h200-x8", "h200", 8)
    assert cal.host["topology"]["summary"] == "NV18 between every pair (NVSwitch)"
    assert cal.describe().startswith("nvidia-h200-x8 (8 x NVIDIA H200, NV18 between every pair (NVSwitch)")
    d = cal.to_dict()
    d.update(schema="dodoco.calibration/1")
    for k in ("host", "compute", "dry_run"):
        d.pop(k)
    (tmp_path / "v1.json").write_text(json.dumps(d))
    old = load_calibration(tmp_path / "v1.json")
    assert (old.host["machine"], old.host["gpu_key"], old.host["gpu_count"]) == ("nvidia-h200-x8", "h200", 8)
    assert old.host["recorded"].startswith("only the machine label") and old.compute == {} and not old.dry_run


def test_a_dry_run_calibration_is_refused_in_one_line(tmp_path, capsys):
    p = _cal_file(tmp_path, _host(), dry_run=True)
    with pytest.raises(Exception, match="is a DRY RUN of dodoco calibrate"):
        load_calibration(p)
    assert load_calibration(p, allow_dry_run=True).dry_run
    assert main(["simulate", str(_runs(tmp_path)), "--ep", "2", "--calibration", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DRY RUN" in err[0] and "run `dodoco calibrate` on the GPUs" in err[0]


@pytest.mark.parametrize(
    "here, check, warn",
    [
        (_host(), "this machine", False),
        (_host(nccl="2.27.3"), "this machine (other software: nccl 2.28.9 there, 2.27.3 here)", False),
        (
            _host("NVIDIA H100 80GB HBM3", "h100"),
            "ANOTHER MACHINE than this one: GPU NVIDIA H200 there, NVIDIA H100 80GB HBM3 here",
            True,
        ),
        (_host(count=8, topo="nvidia-h200-x8.txt"), "ANOTHER MACHINE than this one: 4 GPUs there, 8 GPUs here", True),
        (None, "not compared with this machine (no GPU visible here)", False),
    ],
)
def test_every_output_says_whose_machine(tmp_path, monkeypatch, here, check, warn):
    monkeypatch.setattr(hostcheck, "current_host", lambda: here)
    cal = _cal_file(tmp_path, _host())
    rows, doc = tmp_path / "rows.json", tmp_path / "doc.json"
    args = ["simulate", _runs(tmp_path), "--cluster", _cluster(tmp_path, 4), *"--ep 2,4 --hidden 64".split()]
    assert main([*map(str, args), "--calibration", str(cal), "--json", str(rows), "-o", str(doc)]) == 0
    d = json.loads(doc.read_text())
    who = "h200-x4 (4 x NVIDIA H200, NV18 between every pair (NVSwitch); driver 570.1, nccl 2.28.9, torch 2.11.0)"
    assert d["calibration"]["source"].startswith(who) and d["calibration"]["host_check"] == check
    for r in json.loads(rows.read_text()):
        assert r["calibration"].startswith(who) and r["calibration_host"] == who and r["host_check"] == check
    assert ("ANOTHER MACHINE" in d["title"]) == warn
    assert d["notes"][0] == f"calibration measured on {who}: {check}"
    assert any("make one here with `dodoco calibrate`" in n for n in d["notes"]) == warn


def _cluster(tmp_path, gpn: int, gpu: str = "h200") -> str:
    p = tmp_path / f"c{gpn}{gpu}.toml"
    p.write_text(f'name = "lab"\ngpus_per_node = {gpn}\nnvlink_bw = 450.0\nnic_bw = 50.0\ngpu = "{gpu}"\n')
    return str(p)


def test_a_calibration_of_another_cluster_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(hostcheck, "current_host", lambda: None)
    cal = load_calibration(_cal_file(tmp_path, _host()))
    hc = hostcheck.host_check(cal, load_cluster("dgx-h100"))
    assert hc["host_check"].endswith(
        "NOT THE CLUSTER NAMED: cluster dgx-h100 has h100 GPUs, the calibration's "
        "host h200; cluster dgx-h100 has 8 GPUs per node, the calibration's host 4 "
        "(fits of N <= 4 stand in for larger N)"
    )
    assert hc["title"].startswith("; not compared")
    same = hostcheck.host_check(cal, load_cluster(_cluster(tmp_path, 4)))
    assert same["title"] == "" and "NOT THE CLUSTER" not in same["host_check"]
    assert hostcheck.host_check(None, load_cluster("dgx-h200"))["host_check"].startswith("uncalibrated")


def test_the_compute_model_of_the_calibration_file_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(hostcheck, "current_host", lambda: None)
    rows = tmp_path / "rows.json"
    cal = _cal_file(tmp_path, _host())
    args = [
        "simulate",
        _runs(tmp_path),
        "--cluster",
        _cluster(tmp_path, 4),
        *"--ep 2 --hidden 64 --expert-width 32".split(),
    ]
    assert main([*map(str, args), "--calibration", str(cal), "--json", str(rows)]) == 0
    r = json.loads(rows.read_text())[0]
    assert r["compute_source"].startswith("calibrated: grouped_mm on NVIDIA H200 (2.11, 2031-01-01)")
    # by hand: busiest rank's tiles of 16 rows x 6 H I FLOPs at 1 ms per GFLOP, + 0.01 ms
    from dodoco.compute.cases import local_loads
    from dodoco.ep.layout import contiguous
    from dodoco.ep.steps import source_of
    from dodoco.store import open_run

    run = open_run(tmp_path / "runs" / "prose-L64")
    steps = source_of(np.asarray(run.counts), 0).steps(2)[:8]
    busy = [
        max(
            0.01 + (-(-x // 16) * 16).sum() * 6 * 64 * 32 / 1e9
            for x in local_loads(s[layer], contiguous(16, 2).layer(layer))
        )
        for s in steps
        for layer in range(2)
    ]
    assert r["compute_ms"] == pytest.approx(np.mean(busy))


def test_a_one_gpu_calibration_has_no_dispatch_fit_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hostcheck, "current_host", lambda: None)
    cal = Calibration.new([], [], host=_host(count=1, topo="one-gpu.txt"), compute={"grouped_mm": MODEL.to_dict()})
    p = tmp_path / "one.json"
    p.write_text(json.dumps(cal.to_dict()))
    assert main(["simulate", str(_runs(tmp_path)), "--ep", "2", "--calibration", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no dispatch fit (made on one GPU" in err[0] and "--compute-calibration" in err[0]
