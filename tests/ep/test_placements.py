"""The placement registry and the one fitting policy: fitted placements never see evaluation
units, every placement is evaluated on the same held-out part, EPLB's default replicas."""

import dataclasses

import numpy as np
import pytest

from dodoco.ep import ep_scan
from dodoco.ep.decode import decode_scan
from dodoco.ep.layout import contiguous
from dodoco.ep.placements import (
    PLACEMENTS,
    FitData,
    PlacementSpec,
    build_placement,
    default_redundant,
    evaluation_plan,
    fit_data,
    fit_eval_split,
)
from dodoco.errors import DodocoError


def _spy(seen: list, fit_on: str = "counts") -> PlacementSpec:
    """A fitted placement that records what it was fitted on and places like contiguous."""

    def build(E, N, fit):
        seen.append(fit)
        return dataclasses.replace(contiguous(E, N), name="spy")

    return PlacementSpec(name="spy", target=build, fitted=True, fit_on=fit_on, summary="test spy")


def _identity_counts(S: int, L: int = 2) -> np.ndarray:
    """Unit s sends all its tokens to expert s (E = S): any load names the units summed into it."""
    c = np.zeros((S, L, S), np.uint32)
    c[np.arange(S), :, np.arange(S)] = 5
    return c


def test_registry_lists_every_placement_with_its_policy():
    assert list(PLACEMENTS) == ["contiguous", "round_robin", "eplb", "coact", "affinity"]
    assert [PLACEMENTS[n].fitted for n in PLACEMENTS] == [False, False, True, True, True]
    assert [PLACEMENTS[n].fit_on for n in ("coact", "affinity")] == ["traces", "traces"]
    assert PLACEMENTS["eplb"].fit_on == "counts" and "num_redundant" in PLACEMENTS["eplb"].options
    assert all(PLACEMENTS[n].summary for n in PLACEMENTS)


def test_build_placement_errors_name_the_fix():
    assert build_placement("contiguous", 8, 2).name == "contiguous"
    with pytest.raises(DodocoError, match="did you mean 'round_robin'"):
        build_placement("round_robbin", 8, 2)
    with pytest.raises(DodocoError, match=r"fitted on data: pass fit=FitData"):
        build_placement("eplb", 8, 2)
    with pytest.raises(DodocoError, match="takes no option num_redundant"):
        build_placement("contiguous", 8, 2, num_redundant=2)


@pytest.mark.parametrize("E,N", [(12, 8), (16, 8), (4, 8), (7, 3), (8, 8), (1, 5), (256, 24)])
def test_default_redundant_is_the_fewest_that_fill_every_rank(E, N):
    brute = next(R for R in range(0, 10 * N) if (E + R) % N == 0 and E + R >= N)
    assert default_redundant(E, N) == brute
    p = build_placement("eplb", E, N, FitData(np.arange(1, E + 1)[None] * 3))
    slots = p.slots_per_rank
    assert (slots == slots.flat[0]).all() and p.replicas.sum() == E + brute  # also N > E


def test_fit_and_evaluation_parts_never_overlap():
    for S in (2, 3, 10, 97):
        fit, ev = fit_eval_split(S, 0.5, seed=3)
        assert not set(fit) & set(ev) and sorted([*fit, *ev]) == list(range(S))
    plan = evaluation_plan(["contiguous", "eplb"], 10, seed=3)
    assert plan.part == "held-out" and set(plan.eval_idx) == set(fit_eval_split(10, 0.5, 3)[1])
    plan = evaluation_plan(["contiguous", "round_robin"], 10)
    assert plan.part == "all" and plan.fit_idx is None and plan.eval_idx.tolist() == list(range(10))
    with pytest.raises(DodocoError, match="a window aggregate has one"):
        evaluation_plan(["eplb"], 1)


@pytest.mark.parametrize("seed", [0, 5])
def test_scan_fits_only_on_fit_units_and_evaluates_only_held_out_ones(monkeypatch, seed):
    S = 24
    counts = _identity_counts(S)
    seen: list = []
    monkeypatch.setitem(PLACEMENTS._entries, "spy", _spy(seen))
    r = ep_scan(counts, ep=(2,), batch=(1,), placement=("contiguous", "spy"), seed=seed, n_boot=10)
    fit_idx, eval_idx = fit_eval_split(S, 0.5, seed)
    fitted_on = set(np.flatnonzero(seen[0].load[0]))
    assert fitted_on == set(fit_idx.tolist())  # fails if any evaluation unit leaks into the fit
    assert not fitted_on & set(eval_idx.tolist())
    # evaluation: one step of 2 units per pair of held-out units, for every placement
    assert r.meta["part"] == "held-out"
    assert r.series("gini", "contiguous", 1)["steps"].tolist() == [len(eval_idx) // 2]
    assert r.series("gini", "spy", 1)["steps"].tolist() == [len(eval_idx) // 2]


def test_decode_scan_follows_the_same_policy(monkeypatch):
    S, T = 12, 3
    topk = np.repeat(np.arange(S), T)[:, None, None].astype(np.uint8)  # sequence s -> expert s
    offsets = np.arange(S + 1) * T
    seen: list = []
    monkeypatch.setitem(PLACEMENTS._entries, "spy", _spy(seen, "traces"))
    r = decode_scan(topk, offsets, S, ep=(2,), batch=(1,), placement="spy", n_boot=10, seed=1)
    fit_idx, _ = fit_eval_split(S, 0.5, 1)
    assert set(np.flatnonzero(seen[0].load[0])) == set(fit_idx.tolist())
    assert set(seen[0].topk[:, 0, 0].tolist()) == set(fit_idx.tolist())  # traces of fit units only
    assert seen[0].offsets.tolist() == list(range(0, T * len(fit_idx) + 1, T))
    assert r.meta["part"] == "held-out"


def test_fit_data_carries_the_fit_units_traces():
    counts = np.ones((4, 1, 3), np.uint32)
    topk = np.arange(10)[:, None, None]  # token t of all 10
    offsets = np.array([0, 2, 5, 5, 10])  # units of 2, 3, 0, 5 tokens
    fd = fit_data(counts, np.array([3, 1, 2]), (topk, offsets))
    assert fd.load.tolist() == [[3, 3, 3]]
    assert fd.topk[:, 0, 0].tolist() == [5, 6, 7, 8, 9, 2, 3, 4]
    assert fd.offsets.tolist() == [0, 5, 8, 8]


def test_a_window_run_skips_fitted_placements_with_the_reason():
    from dodoco.ep.steps import window_source

    counts = np.random.default_rng(0).integers(0, 100, (1, 2, 8)).astype(np.uint32)
    r = ep_scan(
        counts, ep=(2, 4), batch=(1, 8), placement=("contiguous", "eplb"), source=window_source(counts), n_boot=10
    )
    assert r.meta["part"] == "all" and r.meta["source_split"] == "uniform"
    assert [s["placement"] for s in r.skipped] == ["eplb"]
    assert "a window aggregate has one" in r.skipped[0]["reason"]
    assert {k[:3] for k in r.keys} == {(b, n, "contiguous") for b in (1, 8) for n in (2, 4)}
    assert set(r.steps.tolist()) == {1}
    with pytest.raises(DodocoError, match="a window aggregate has one"):
        ep_scan(counts, ep=(2,), batch=(1,), placement="eplb", source=window_source(counts), strict=True)


def test_ls_lists_placements_from_the_registry(monkeypatch, capsys):
    from dodoco.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    seen: list = []
    monkeypatch.setitem(PLACEMENTS._entries, "spy", _spy(seen, "traces"))
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for spec in PLACEMENTS.values():
        assert f"{spec.name:13s} {spec.summary}" in out
    assert "spy" in out and "fitted on traces" in out and "options: num_redundant" in out


def test_scan_hands_trace_placements_the_fit_units_traces(monkeypatch):
    S, T = 10, 2
    counts = _identity_counts(S, L=1)
    topk = np.repeat(np.arange(S), T)[:, None, None]  # every token of unit s names s
    seen: list = []
    monkeypatch.setitem(PLACEMENTS._entries, "spy", _spy(seen, "traces"))
    ep_scan(counts, ep=(2,), batch=(1,), placement="spy", tokens=(topk, np.arange(S + 1) * T), n_boot=5)
    fit_idx, _ = fit_eval_split(S, 0.5, 0)
    assert sorted(set(seen[0].topk[:, 0, 0].tolist())) == fit_idx.tolist()
    with pytest.raises(DodocoError, match="fitted on token traces"):
        ep_scan(counts, ep=(2,), batch=(1,), placement="spy", strict=True, n_boot=5)
