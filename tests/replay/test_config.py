"""Replay cases from run directories and the grid: kinds, bytes, top-k, settings errors."""

import numpy as np
import pytest

from dodoco.ep.layout import contiguous
from dodoco.ep.traffic import copy_traffic_from_tokens, traffic_matrix
from dodoco.errors import DodocoError
from dodoco.ep.steps import step_order
from dodoco.replay.config import ReplayConfig, build_cases, grid_cases
from dodoco.replay.plan import case_bytes
from dodoco.replay.routing import block_counts
from dodoco.store import open_run


def test_build_cases_real_mock_balanced_skew(runs_dir):
    cfg = ReplayConfig(
        runs=(str(runs_dir),),
        condition="prose",
        skew=(1.5, 2.5),
        skew_patterns=("hot-receiver", "hot-pair"),
        backend="gloo",
    )
    cases, prov = build_cases(cfg, 2)
    kinds = [c.kind for c in cases]
    assert kinds.count("real") == kinds.count("mock") == kinds.count("balanced") == 8  # 4 steps x 2 layers
    assert [c.condition for c in cases if c.kind == "skew"] == ["skew-hot-receiver-1.5", "skew-hot-pair-1.5"]
    assert prov["skipped"] == ["skew hot-receiver rho=2.5: rho > N=2", "skew hot-pair rho=2.5: rho > N=2"]
    reals = [c for c in cases if c.kind == "real"]
    for r, b in zip(reals, [c for c in cases if c.kind == "balanced"]):
        np.testing.assert_array_equal(r.splits.sum(1), b.splits.sum(1))  # same bytes per rank
        assert (r.step, r.layer, b.pattern) == (b.step, b.layer, "uniform")
        assert b.splits.max() - b.splits.min() <= 1
    assert all(c.splits.sum(1).tolist() == [32, 32] for c in reals)  # 16 tokens x K=2, B=1
    assert prov["mock"]["condition"] == "mock-uniform" and prov["real"]["E"] == 8 and prov["part"] == "all"
    for c in cases:  # every case's top-k reproduces its splits, K distinct experts per token
        assert c.K == 2 and c.E == 8 and c.topk_source in ("synthesised from counts",)
        np.testing.assert_array_equal(copy_traffic_from_tokens(c.topk, contiguous(8, 2)), c.splits)


def test_real_cases_match_counts_by_hand(runs_dir):
    """Independent: the step's sequences summed per rank, through the contiguous placement."""
    cfg = ReplayConfig(runs=(str(runs_dir),), condition="prose", mock="none", backend="gloo")
    cases, _ = build_cases(cfg, 2)
    counts = np.asarray(open_run(runs_dir / "prose-L16").counts)
    order = step_order(8, 0)
    for c in [c for c in cases if c.kind == "real"]:
        seqs = order[2 * c.step : 2 * c.step + 2]  # B=1: rank i holds sequence seqs[i]
        src = counts[seqs, c.layer].astype(np.int64)
        np.testing.assert_array_equal(c.splits, traffic_matrix(src, contiguous(8, 2)))
        np.testing.assert_array_equal(block_counts(c.splits, c.slots).sum(1), src.sum(1))


def test_traces_drive_the_topk(traced_dir):
    run = open_run(traced_dir / "code-L16")
    topk, offsets = run.tokens()
    cfg = ReplayConfig(runs=(str(traced_dir),), mock="none", backend="gloo", max_steps=1, layers=(1,))
    c = [c for c in build_cases(cfg, 2)[0] if c.kind == "real"][0]
    assert c.topk_source == "traces" and (c.step, c.layer) == (0, 1)
    seqs = step_order(8, 0)[:2]
    for i, s in enumerate(seqs):  # rank i holds sequence seqs[i]: its traced experts, in token order
        np.testing.assert_array_equal(c.topk[i], topk[offsets[s] : offsets[s + 1], 1, :])


def test_eplb_is_fitted_on_one_part_and_replays_the_other(runs_dir):
    from dodoco.ep.placements import build_placement, fit_data, fit_eval_split

    cfg = ReplayConfig(runs=(str(runs_dir),), condition="prose", mock="none", placement="eplb", backend="gloo")
    cases, prov = build_cases(cfg, 2)
    assert prov["part"] == "held-out" and prov["placement"] == "eplb"
    reals = [c for c in cases if c.kind == "real"]
    assert len(reals) == 2 * 2  # 4 held-out sequences = 2 steps of N*B=2, x 2 layers
    fit, held = fit_eval_split(8, 0.5, 0)
    counts = np.asarray(open_run(runs_dir / "prose-L16").counts)
    p = build_placement("eplb", 8, 2, fit_data(counts, fit))  # independent: fitted on the fit part only
    order = held[step_order(len(held), 0)]
    for c in reals:  # every replayed sequence is held out; splits are the fitted placement's traffic
        seqs = order[2 * c.step : 2 * c.step + 2]
        assert set(seqs) <= set(held)
        np.testing.assert_allclose(c.splits.sum(), counts[seqs, c.layer].sum())
        assert c.E == int(p.layer(c.layer).copies.sum())


@pytest.mark.parametrize("pattern", ["hot-receiver", "hot-pair", "uniform"])
def test_grid_sizes_and_skews(pattern):
    cfg = ReplayConfig(
        grid_sizes=(16 << 20, 64 << 20),
        grid_skews=(1.0, 1.05, 1.5, 3.0),
        grid_patterns=(pattern,),
        hidden=7168,
        backend="gloo",
    )
    cases, skipped = grid_cases(cfg, 2)
    assert len(cases) == 2 * 3 and len(skipped) == 2  # rho = 3 > N = 2 skipped at both sizes
    for c in cases:
        b = case_bytes(c.splits, cfg.row_bytes)
        size = 16 << 20 if b["per_rank_bytes"] < 32 << 20 else 64 << 20
        assert abs(b["per_rank_bytes"] - size) <= 8 * cfg.row_bytes  # whole tokens of K = 8 rows
        want = 1.0 if pattern == "uniform" else c.rho
        assert b["receiver_skew"] == pytest.approx(want, abs=2e-3)
        assert (c.kind, c.pattern, c.E, c.K) == ("grid", pattern, 256, 8)


def test_config_validation():
    with pytest.raises(DodocoError, match="unknown dtype 'bf17'"):
        ReplayConfig(runs=("a",), dtype="bf17")
    with pytest.raises(DodocoError, match="unknown backend 'mpi'"):
        ReplayConfig(runs=("a",), backend="mpi")
    with pytest.raises(DodocoError, match="unknown dispatcher 'megatorn': did you mean 'megatron'"):
        ReplayConfig(runs=("a",), dispatcher=("nccl,megatorn",))
    with pytest.raises(DodocoError, match="unknown pattern 'hot-spot'"):
        ReplayConfig(runs=("a",), skew_patterns=("hot-spot",))
    with pytest.raises(DodocoError, match="unknown key colour"):
        ReplayConfig.from_dict({"colour": 1})
    with pytest.raises(DodocoError, match="no run given"):
        ReplayConfig()
    cfg = ReplayConfig(runs=("a",), layers=(1,), skew=(2.0,), dispatcher=("all",))
    assert ReplayConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.row_bytes == 4096 and cfg.dispatchers[0] == "nccl" and "deepep" in cfg.dispatchers
    assert cfg.explicit_dispatchers == frozenset()
    assert ReplayConfig(runs=("a",), dispatcher=("nccl", "all")).explicit_dispatchers == {"nccl"}


def test_gloo_dry_run_takes_small_defaults_only_where_none_was_given():
    import argparse

    from dodoco.commands.replay import add_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(p.parse_args(["runs/x", "--backend", "gloo", "--iters", "7"]))
    assert (cfg.max_steps, cfg.iters, cfg.warmup) == (2, 7, 1)
    cfg = config_from_args(p.parse_args(["runs/x"]))  # GPUs: every step, the timing defaults
    assert (cfg.max_steps, cfg.iters, cfg.warmup) == (None, 30, 5)
