"""Figures are paper-ready: no text outside the figure, at most MAX_LINES lines in an axes (small
multiples otherwise), one legend per figure, the same layer in every heatmap panel."""

import numpy as np
import pytest

from dodoco.report import plots
from dodoco.report.style import MAX_LINES, Style, audit


def test_every_report_figure_passes_the_audit(report_build):
    out, checked = report_build
    assert len(checked) == len(list(out.glob("fig-*.png")))  # every figure written was audited
    bad = [(title[:50], problems) for title, problems in checked if problems]
    assert not bad, bad


def test_the_audit_finds_a_clipped_text_and_a_crowded_axes():
    # the checks themselves: a text placed past the edge and seven lines in one axes are reported
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(3, 2))
    for i in range(MAX_LINES + 1):
        ax.plot([0, 1], [i, i + 1])
    ax.plot([0, 1], [0, 0], gid="reference")  # a reference line does not count
    fig.text(0.98, 0.5, "a long label that runs past the right edge")
    problems = audit(fig)
    assert any(p.startswith("clipped by") for p in problems)
    assert f"{MAX_LINES + 1} lines in axes ''" in problems
    plt.close(fig)


def test_png_grows_a_figure_until_nothing_is_clipped(monkeypatch):
    seen = []
    monkeypatch.setattr(plots, "AUDIT", seen)
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_ylabel("a y label far longer than the axes is tall, as the Lorenz one was")
    plots.png(fig)
    assert seen == [("", [])]


def test_small_multiples_keep_each_axes_readable():
    lines = [{"condition": c, "placement": p, "ep": [4, 8], "mean": [1, 2]} for c in "abcde" for p in ("x", "y", "z")]
    panels = plots.small_multiples({"m": lines})
    assert list(panels) == ["m, x", "m, y", "m, z"] and all(len(v) == 5 for v in panels.values())
    many = plots.small_multiples({"m": [{"condition": str(i)} for i in range(13)]}, keys=("placement",))
    assert [len(v) for v in many.values()] == [6, 6, 1]
    seen = []
    old, plots.AUDIT = plots.AUDIT, seen
    try:
        plots.ep_lines({"m": lines}, "y", "t", Style("abcde", "xyz"))
    finally:
        plots.AUDIT = old
    assert seen[0][1] == []


def test_heatmap_panels_show_one_layer(report_build):
    import csv

    out, checked = report_build
    co = list(csv.DictReader((out / "coactivation.csv").open()))
    aff = list(csv.DictReader((out / "affinity.csv").open()))
    pairs = list(csv.DictReader((out / "coactivation-top-pairs.csv").open()))
    layers = sorted({int(r["layer"]) for r in co})
    tv = [np.mean([float(r["tv"]) for r in co if int(r["layer"]) == l]) for l in layers]
    uc = [
        np.mean([float(r["uncertainty_coef"]) for r in aff if int(r["layer"]) == l])
        for l in sorted({int(r["layer"]) for r in aff})
    ]
    # every run's top pairs come from one layer: the most concentrated on average over the runs
    assert {int(r["layer"]) for r in pairs} == {int(np.argmax(tv))}
    titles = " ".join(" ".join(t.split()) for t, _ in checked)
    assert f"pairs in MoE layer {int(np.argmax(tv))} (every panel" in titles
    j = int(np.argmax(uc))
    assert f"MoE layers {j} -> {j + 1} (every panel" in titles


@pytest.mark.parametrize("fn", ["dispatch_vs_skew", "predicted_vs_n"])
def test_dispatch_figures_use_the_one_style(fn):
    from dodoco.report import plots_dispatch, style

    assert plots_dispatch._COLORS is style.DISPATCHER_COLORS and plots_dispatch._MARKERS is style.CASE_MARKERS
    assert plots_dispatch._legend is style.legend and callable(getattr(plots_dispatch, fn))
