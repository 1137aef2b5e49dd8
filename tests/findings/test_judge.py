"""judge(): the one path from runs to verdicts, on synthetic run directories with known answers."""

import json

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.findings import FindingsOptions, judge
from dodoco.defaults import default_eps
from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.metrics import gini
from dodoco.store import find_runs, open_run

OPTS = FindingsOptions(n_boot=100, placement=("contiguous", "round_robin"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for model, cond, kind, conc, seed in (
        ("a", "mock-uniform", "mock", None, 1),
        ("a", "prose", "real", 0.3, 2),
        ("b", "prose", "real", 5.0, 3),
    ):
        write_counts_run(
            root / f"{model}-{cond}",
            skewed_counts(128, 2, 16, assignments=64, concentration=conc, seed=seed),
            model=model,
            condition=cond,
            kind=kind,
            seq_len=32,
        )
    return root


def test_default_eps():
    assert default_eps(8) == [4, 8]
    assert default_eps(256) == [4, 8, 16, 32, 64, 128, 256]


def test_judge_gives_every_verdict_with_sentences_and_tables(runs):
    f = judge([runs], OPTS)
    assert list(f.verdicts) == ["ep_invariance", "mock_vs_real", "bands"] and not f.skipped
    assert f.verdicts["mock_vs_real"].notes == [
        f"not compared: b at seq_len 32 has only real-text runs ({runs / 'b-prose'})"
    ]
    ep = f.verdicts["ep_invariance"]
    assert [r["eps"] for r in ep.summary] == ["4,8,16"] * 3  # 32 > E = 16
    assert all(s.batch == 2 for s in f.scans.values())  # largest B with 3 steps at N=16: 3*16*2 <= 128
    assert f.sentences[0].startswith("EP invariance over 3 run(s)")
    assert any(s.startswith("Gini(mock)/Gini(real) at B=8: ") for s in f.sentences)
    assert any(s.startswith("Bands at seq_len 32, B=8 ") for s in f.sentences)
    assert len(f.headlines) < len(f.sentences)
    json.dumps(f.to_dict(), allow_nan=False)  # strict JSON


def test_band_gini_matches_direct_step_computation(runs):
    f = judge([runs], OPTS)
    run = open_run(runs / "a-prose")
    order = np.random.default_rng(0).permutation(128)
    steps = np.asarray(run.counts)[order].reshape(16, 8, 2, 16).sum(axis=1)
    expected = float(np.nanmean(gini(steps), axis=1).mean())
    got = next(e for e in f.verdicts["bands"].evidence if e["model"] == "a" and e["condition"] == "prose")
    assert got["gini"] == pytest.approx(expected) and got["steps"] == 16 and got["batch"] == 8
    assert got["gini_lo"] <= got["gini"] <= got["gini_hi"]


def test_a_verdict_that_cannot_be_judged_is_skipped_with_why(runs):
    f = judge([runs / "b-prose"], OPTS)
    assert "mock_vs_real" not in f.verdicts and "has only real-text runs" in f.skipped["mock_vs_real"]
    assert f.sentences[-1].startswith("mock vs real not judged: ")


def test_kind_comes_from_the_manifest_never_the_name(tmp_path):
    p = write_counts_run(tmp_path / "r", skewed_counts(8, 1, 4), model="m", condition="mock-looking", kind="real")
    q = write_counts_run(tmp_path / "q", skewed_counts(8, 1, 4), model="m", condition="mock-uniform", kind="real")
    assert open_run(p).kind.value == "real" and open_run(q).kind.value == "real"


def test_K_comes_from_the_run_and_is_never_assumed(tmp_path):
    p = write_counts_run(tmp_path / "k", skewed_counts(8, 1, 8), model="m", condition="prose", kind="real", K=6)
    assert open_run(p).K == 6
    q = write_counts_run(tmp_path / "nok", skewed_counts(8, 1, 8), model="m", condition="prose", kind="real", K=None)
    with pytest.raises(DodocoError, match="does not record top-k K: re-import it with --top-k K"):
        open_run(q).K


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"ep": (0, 4)}, "--ep 0 must be >= 1"),
        ({"threshold": -1.0}, "--threshold -1.0 must be >= 0"),
        ({"low": 0.9, "high": 0.1}, "need 0 <= --low < --high <= 1, got --low 0.9 --high 0.1"),
        ({"placement": ("contigous",)}, "unknown placement 'contigous': did you mean 'contiguous'?"),
        ({"batch": ()}, "--batch needs at least one batch size"),
        ({"ref_batch": 0}, "--ref-batch 0 must be >= 1"),
    ],
)
def test_options_are_checked_before_any_work(kw, message):
    with pytest.raises(DodocoError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        FindingsOptions(**kw)


def test_unreadable_run_fails_before_work(runs, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(runs / "b-prose", bad)
    (bad / "counts.npy").write_bytes(b"not a numpy file")
    with pytest.raises(DodocoError, match="counts.npy"):
        judge([bad], OPTS)
    assert find_runs([runs])  # the others still open
