"""bench/compute_check.py: the shipped calibration scored on routing it never saw, split by activation.
Rows timed at exactly the shipped prediction score 0; rows 10% slower than predicted for one activation
score -9.1% for that activation alone. A check that fitted the rows, used another GPU's model, or mixed
the activations fails here."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from compute_check import shipped_notes, shipped_on_routing  # noqa: E402
from dodoco.compute.features import ExpertShape  # noqa: E402
from dodoco.compute.model import resolve_model  # noqa: E402

DEVICE = "NVIDIA H100 80GB HBM3"


def _rows(slow_act: str) -> list[dict]:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(40):
        act = "relu2" if i % 4 == 0 else "swiglu"
        shape = ExpertShape(2048, 768, act=act)
        loads = rng.integers(0, 300, size=8).tolist()
        loads[0] += 200  # at least 200 tokens: in the target range
        for kernel in ("grouped_mm", "loop"):
            pred = float(resolve_model(DEVICE, kernel).predict([loads], shape)[0])
            rows.append(
                {
                    "set": "routing", "control": "routing", "kernel": kernel, "N": 8, "tokens": sum(loads),
                    "loads": loads, "hidden": 2048, "width": 768, "act": act,
                    "ms": pred * (1.1 if act == slow_act else 1.0),
                }
            )  # fmt: skip
    return rows


def test_shipped_check_scores_the_shipped_model_per_activation():
    out = shipped_on_routing({"facts": {"device": DEVICE}, "rows": _rows("relu2")})
    for kernel in ("grouped_mm", "loop"):
        r = out[kernel]
        assert "ANOTHER GPU" not in r["calibration"] and "H100" in r["calibration"]
        assert r["by_act"]["swiglu"]["max_abs_err"] == pytest.approx(0.0, abs=1e-12)
        assert r["by_act"]["relu2"]["bias"] == pytest.approx(1 / 1.1 - 1, rel=1e-9)
        assert r["target"]["n"] == 40 and r["by_act"]["relu2"]["n"] == 10
    assert any("relu2 experts 9.1% / 9.1% (n 10, bias -9.1%)" in n for n in shipped_notes(out))


def test_blind_figure_draws_every_series():
    from compute_check import blind_figure

    ms = np.array([0.1, 0.2, 0.4])
    err = np.array([0.01, -0.02, 0.05])
    acts = np.array(["swiglu", "relu2", "swiglu"])
    png = blind_figure([("grouped_mm: x", {"a.json.gz": (ms, err, acts), "b.json": (ms, -err, acts)})], "t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
