"""Which replay samples a calibration may fit on (``simulate.samples``): only calibration traffic.

Schema 2 replays the routing cases' balanced and skew controls at the routing cases' own sizes:
fitting on them would leak those sizes into the validation, so they are controls, never fitted.
Schema 1 had no grid: its balanced and skew controls are its calibration traffic.
"""

import sys
from pathlib import Path

import numpy as np

from dodoco.simulate.fit import calibrate
from dodoco.simulate.samples import routing_role

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_replay import load_synthetic, replay_v1, replay_v2, truth_form  # noqa: E402


def _with_controls(d: dict) -> dict:
    """A schema-2 result plus a balanced and a skew control of every routing case (same send rows)."""
    from dodoco.replay.plan import balanced_splits, skewed_splits

    extra = []
    for r in [r for r in d["rows"] if r["kind"] == "real"]:
        rows = np.asarray(r["splits"]).sum(1)
        for kind, s in (("balanced", balanced_splits(rows)), ("skew", skewed_splits(rows, 2.0))):
            extra.append(
                {
                    **r,
                    "kind": kind,
                    "condition": kind,
                    "splits": s.tolist(),
                    "pattern": "uniform" if kind == "balanced" else "hot-receiver",
                }
            )
    d["rows"] += extra
    return d


_groups = load_synthetic


def test_schema_2_controls_are_never_fitted(tmp_path):
    d = _with_controls(replay_v2(truth_form("blend", lambda mb: [0.7])))
    groups, _ = _groups(tmp_path, d)
    for g in groups:
        roles = dict(zip(g.ids, g.role))
        for i, kind in zip(g.ids, g.kind):
            if kind in ("balanced", "skew"):
                assert roles[i] == "control", i
            elif kind == "grid":
                assert roles[i] == "fit", i
            else:
                assert roles[i] in ("select", "validate"), i
        assert set(g.of_role("fit").kind) == {"grid"}  # what the fit reads
    cal, _ = calibrate(groups, [])
    assert cal.fits


def test_schema_1_controls_are_its_calibration_traffic(tmp_path):
    v1 = replay_v1()
    groups, sources = _groups(tmp_path, v1, "v1.json")
    assert sources[0].schema == "dodoco.replay/1"
    for g in groups:
        assert dict(zip(g.kind, g.role)) == {"real": routing_role("m", "prose", 0, 0), "skew": "fit", "balanced": "fit"}
