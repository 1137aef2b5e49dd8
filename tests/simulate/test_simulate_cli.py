"""`dodoco simulate` end to end: calibrated from replays, preset calibrations, uncalibrated labels, errors."""

import json
import sys
from pathlib import Path

import numpy as np

from dodoco.cli import main
from dodoco.findings.synthetic import write_counts_run

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_replay import replay_v2, truth_form  # noqa: E402


def _run(path, model, condition="prose", S=16, L=2, E=16, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.r_[40.0, np.full(E - 1, 10.0)], (S, L, E)).astype(np.uint32)
    write_counts_run(path, counts, model=model, condition=condition, seq_len=64, K=2)


def _replays(tmp_path) -> Path:
    truth = truth_form("blend", lambda mb: [0.7])
    f = tmp_path / "replays.json"
    f.write_text(
        json.dumps(
            {
                "machine": "fake-x4",
                "replays": [replay_v2(truth, N=2, routing_cases=2), replay_v2(truth, N=4, routing_cases=2)],
            }
        )
    )
    return f


def test_simulate_calibrated_from_replays(tmp_path, capsys):
    _run(tmp_path / "runs" / "a" / "prose-L64", "model-a")
    _run(tmp_path / "runs" / "b" / "prose-L64", "model-b", seed=1)
    out, doc = tmp_path / "sim.json", tmp_path / "doc.json"
    rc = main(
        [
            "simulate",
            str(tmp_path / "runs"),
            "--cluster",
            "dgx-h100",
            "--ep",
            "2,4,16",
            "--hidden",
            "64",
            "--calibration",
            str(_replays(tmp_path)),
            "--json",
            str(out),
            "-o",
            str(doc),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "model error on held-out routing replays" in text and "calibrated on fake-x4" in text
    assert "skipped EP 16 for model-a prose: needs 16 sequences" not in text  # 16 sequences fit EP 16 x 1
    rows = json.loads(out.read_text())
    keys = [(r["model"], r["condition"], r["dispatcher"], r["N"]) for r in rows]
    assert len(keys) == len(set(keys)) and {r["model"] for r in rows} == {"model-a", "model-b"}
    for r in rows:
        assert r["cluster"] == "dgx-h100" and r["calibration"].startswith("fake-x4") and r["run"].endswith("prose-L64")
        assert r["dispatch_ms"] >= r["balanced_ms"] > 0 and r["compute_ms"] > 0 and r["compute_straggler_ms"] >= 0
        assert r["nvlink"].startswith("calibrated: fake-x4")
        assert r["compute_source"].startswith("calibrated: grouped_mm on NVIDIA H100")
        assert "ANOTHER GPU" not in r["compute_source"]  # dgx-h100 uses the H100's own calibration
    assert {r["nic"][:7] for r in rows if r["N"] == 16} == {"nominal"}
    d = json.loads(doc.read_text())
    assert d["schema"] == "dodoco.simulate/1" and d["validation"] and any("NIC" in n for n in d["notes"])


def test_simulate_uncalibrated_says_so(tmp_path, capsys):
    _run(tmp_path / "runs" / "a" / "prose-L64", "model-a")
    out = tmp_path / "sim.json"
    assert main(["simulate", str(tmp_path / "runs"), "--cluster", "dgx-h100", "--ep", "2,4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "UNCALIBRATED prediction on dgx-h100" in text and "note: uncalibrated:" in text
    assert all(r["calibration"].startswith("none: uncalibrated") for r in json.loads(out.read_text()))
    assert main(["simulate", str(tmp_path / "runs"), "--cluster", "dgx-h200", "--ep", "2,4", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)  # the preset's shipped calibration (nvidia-h200-x8)
    assert rows and all(r["calibration"].startswith("nvidia-h200-x8") for r in rows)


def test_simulate_cli_errors(tmp_path, capsys):
    assert main(["simulate", "--cluster", "dgx-h9"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["simulate"]) == 2
    assert "name a run directory" in capsys.readouterr().err
    gloo = tmp_path / "gloo.json"
    gloo.write_text(json.dumps({**replay_v2(truth_form("blend", lambda mb: [0.7])), "backend": "gloo"}))
    assert main(["simulate", "--calibration", str(gloo)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--backend gloo replay (a CPU dry run)" in err and "\n" not in err
    assert main(["simulate", "--calibration", str(gloo), "--uncalibrated"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_simulate_and_export_read_toml_configs(tmp_path, capsys):
    _run(tmp_path / "runs" / "a" / "prose-L64", "model-a")
    cfg = tmp_path / "sim.toml"
    cfg.write_text('cluster = "dgx-h100"\nep = [2, 4]\nbatch = 2\n')
    out = tmp_path / "sim.json"
    assert main(["simulate", str(tmp_path / "runs"), "--config", str(cfg), "--batch", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {(r["cluster"], r["batch"]) for r in rows} == {("dgx-h100", 1)} and [r["N"] for r in rows] == [2, 4]
    cfg.write_text('cluster = "dgx-h100"\nimbalance_weight = 0.5\n')
    assert main(["simulate", str(tmp_path / "runs"), "--config", str(cfg)]) == 2
    assert "unknown key imbalance_weight" in capsys.readouterr().err


def test_a_window_aggregate_is_one_simulated_step_and_says_so():
    from pathlib import Path

    from dodoco.simulate.api import SimulateConfig, simulate

    run = Path(__file__).parent.parent / "fixtures" / "run-v1" / "window-import"
    res = simulate(SimulateConfig(runs=(str(run),), ep=(2, 4), hidden=2048))
    assert [r["N"] for r in res.rows] == [2, 4] and all(r["cases"] == 2 for r in res.rows)  # 1 step x 2 layers
    assert all(r["source_split"] == "uniform" for r in res.rows)
    assert any("one aggregate window" in n and "split evenly" in n for n in res.notes)


def test_the_expert_shape_is_each_runs_own_unless_named(tmp_path):
    """No --shape and no --hidden/--expert-width: a run that records its experts is simulated with them (a
    Nemotron run with its ReLU^2 experts), one that does not with nominal Qwen3-30B-A3B, said in its label."""
    from types import SimpleNamespace

    from dodoco.compute.features import ExpertShape
    from dodoco.simulate.api import SimulateConfig, run_shape, simulate

    _run(tmp_path / "r", "synthetic-model")
    rows = simulate(SimulateConfig(runs=(str(tmp_path / "r"),), ep=(2,))).rows
    assert rows and all("SwiGLU H=2048 I=768 (nominal Qwen3-30B-A3B" in r["compute_source"] for r in rows)
    named = simulate(SimulateConfig(runs=(str(tmp_path / "r"),), ep=(2,), shape="nemotron-30b")).rows
    assert all(r["compute_source"].endswith("ReLU^2 H=2688 I=1856") for r in named)
    assert all(a["compute_ms"] != b["compute_ms"] for a, b in zip(rows, named))
    details = {"hidden_size": 2688, "moe_intermediate_size": 1856, "expert_act": "relu2"}
    nemo = SimpleNamespace(manifest=SimpleNamespace(to_dict=lambda: {"model": {"details": details}}), model="x")
    assert run_shape(nemo) == (ExpertShape(2688, 1856, act="relu2"), " (the run's own)")


def test_half_a_shape_is_one_line(tmp_path, capsys):
    _run(tmp_path / "r", "synthetic-model")
    assert main(["simulate", str(tmp_path / "r"), "--expert-width", "768"]) == 2
    assert "--expert-width 768 needs --hidden H" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "r"), "--act", "relu2"]) == 2
    assert "--act relu2 needs --hidden H and --expert-width I" in capsys.readouterr().err
