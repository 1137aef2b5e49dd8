"""Bands: paper thresholds on hand values, the data-derived grouping, bad input."""

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.findings import bands, gap_groups


def _rows(table, seq_len=512, width=0.01, steps=16):
    return [
        {
            "model": m,
            "condition": c,
            "kind": "mock" if c.startswith("mock") else "real",
            "seq_len": seq_len,
            "gini": g,
            "gini_lo": g - width,
            "gini_hi": g + width,
            "steps": steps,
            "run": f"runs/{m}/{c}",
        }
        for m, vals in table.items()
        for c, g in vals.items()
    ]


PAPER_LIKE = {
    "mha": {"prose": 0.105, "code": 0.20, "mock-uniform": 0.25},
    "mamba": {"prose": 0.150, "math": 0.19},
    "gqa": {"prose": 0.20, "code": 0.22},
    "mla": {"prose": 0.25, "code": 0.30, "mock-uniform": 0.38},
    "gdn": {"prose": 0.26, "code": 0.23},  # one real condition below 0.24: not persistently concentrated
}


def test_paper_thresholds():
    v = bands(_rows(PAPER_LIKE))
    band = {r["model"]: r["band"] for r in v.summary}
    assert band == {
        "mha": "data-resilient",
        "mamba": "data-resilient",
        "gqa": "intermediate",
        "mla": "persistently concentrated",
        "gdn": "intermediate",
    }
    assert v.verdict == ("data-resilient: mha, mamba; intermediate: gqa, gdn; persistently concentrated: mla")
    mla = next(r for r in v.summary if r["model"] == "mla")
    assert mla["real_min"] == 0.25 and mla["real_mean"] == pytest.approx(0.275)  # mock 0.38 not counted
    assert len(v.evidence) == 12


def test_thresholds_configurable_and_missing_prose():
    v = bands(_rows({"x": {"code": 0.12, "math": 0.3}}), low=0.13)
    assert v.summary[0]["band"] == "data-resilient" and v.summary[0]["judged_on"] == "code"
    assert any("no prose run" in n for n in v.notes)
    assert bands(_rows({"x": {"prose": 0.2}}), low=0.1, high=0.2).summary[0]["band"] == "persistently concentrated"


def test_gap_groups_hand_computed():
    g, gap, sep = gap_groups([0.32, 0.1, 0.3, 0.12])
    assert g.tolist() == [1, 0, 1, 0] and gap == pytest.approx(0.18) and sep
    g, gap, sep = gap_groups([0.1, 0.2, 0.3, 0.41], k=2)  # gaps .1 .1 .11: split before 0.41
    assert g.tolist() == [0, 0, 0, 1] and gap == pytest.approx(0.11) and not sep  # group spread .2 > gap
    g, _, _ = gap_groups([0.1, 0.11, 0.2, 0.21, 0.4], k=3)
    assert g.tolist() == [0, 0, 1, 1, 2]
    g, gap, sep = gap_groups([0.2, 0.2])
    assert g.tolist() == [0, 0] and np.isnan(gap) and not sep


def test_data_groups_in_verdict():
    v = bands(_rows(PAPER_LIKE))
    group = {r["model"]: r["data_group"] for r in v.summary}
    # mean real Gini: mha .1525, mamba .17, gqa .21, gdn .245, mla .275 -> largest gap .1525..0.17? no:
    # gaps .0175, .04, .035, .03 -> split between mamba and gqa
    assert group == {"mha": 1, "mamba": 1, "gqa": 2, "gdn": 2, "mla": 2}
    assert v.tables["grouping"][0]["group_gap"] == pytest.approx(0.04)
    assert "splits them as mha, mamba | gqa, mla, gdn; the gap is smaller than the spread" in v.sentences[-1]


def test_sequence_lengths_are_judged_apart():
    v = bands(_rows({"a": {"prose": 0.1}, "b": {"prose": 0.3}}, 512) + _rows({"a": {"prose": 0.3}}, 1024))
    got = {(r["model"], r["seq_len"]): r["band"] for r in v.summary}
    assert got == {
        ("a", 512): "data-resilient",
        ("b", 512): "persistently concentrated",
        ("a", 1024): "persistently concentrated",
    }
    assert v.verdict == (
        "seq_len 512: data-resilient: a; persistently concentrated: b | seq_len 1024: persistently concentrated: a"
    )
    assert [g["seq_len"] for g in v.tables["grouping"]] == [512, 1024]


def test_certainty_from_intervals_and_steps():
    rows = _rows(
        {
            "sure": {"prose": 0.30, "code": 0.26},
            "edge": {"prose": 0.245, "code": 0.30},
            "res": {"prose": 0.16, "code": 0.3},
        },
        width=0.02,
    )
    rows += _rows({"one": {"prose": 0.10}}, steps=1)
    got = {r["model"]: (r["band"], r["certainty"]) for r in bands(rows).summary}
    assert got == {
        "sure": ("persistently concentrated", "sure"),  # lowest 0.26 - 0.02 >= 0.24
        "edge": ("persistently concentrated", "borderline"),  # 0.245 - 0.02 < 0.24
        "res": ("intermediate", "borderline"),  # prose 0.16 - 0.02 < 0.15
        "one": ("data-resilient", "few steps"),
    }
    text = " ".join(bands(rows).sentences)
    assert "sure persistently concentrated (sure: code 0.260 [0.240, 0.280] lies above 0.24)" in text
    assert "one data-resilient (not sure: prose 0.100 rests on 1 step(s), no interval)" in text


def test_bad_thresholds_and_no_real_text():
    with pytest.raises(DodocoError, match="low=0.3, high=0.24"):
        bands(_rows(PAPER_LIKE), low=0.3)
    with pytest.raises(DodocoError, match="needs real-text runs"):
        bands(_rows({"a": {"mock-uniform": 0.3}}))
