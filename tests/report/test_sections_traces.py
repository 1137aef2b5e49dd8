"""The beyond-counts report sections on real traced runs: they render, draw what trace_summary
returns (computed once per report), and skip with a reason when no run has traces."""

import pytest

from dodoco.report import sections_traces as st  # noqa: E402
from dodoco.report.section import SkipSection  # noqa: E402

SECTIONS = (st.coactivation_section, st.affinity_section, st.trace_placements_section, st.rebalance_section)


def _ctx(runs, out):
    from dodoco.findings import judge
    from dodoco.report.context import ReportContext
    from dodoco.report.options import ReportOptions

    opts = ReportOptions(n_boot=100)
    return ReportContext(judge(runs, opts), opts, out)


def test_sections_render_the_summary(observed, tmp_path):
    ctx = _ctx([observed], tmp_path)
    for fn in SECTIONS:
        sec = fn(ctx)
        assert sec.figures and sec.tables
        assert all(f.png[:8] == b"\x89PNG\r\n\x1a\n" for f in sec.figures)
    summary = ctx.cache[("trace_summary",)]  # one computation for the four sections
    placements = next(t for t in st.trace_placements_section(ctx).tables if t.name == "trace-placements")
    assert len(placements.rows) == len(summary.placements)
    assert {r["placement"] for r in placements.rows} == {"contiguous", "eplb", "coact", "affinity"}

    reb = next(t for t in st.rebalance_section(ctx).tables if t.name == "rebalance")
    for shown, raw in zip(reb.rows, summary.rebalance):
        for k in ("stale_s", "migrate_s", "total_s"):
            if raw.get(k):  # tiny nominal seconds (a toy's expert shape) are never rounded to 0
                assert shown[k] != 0 and shown[k] == pytest.approx(raw[k], rel=1e-5)
        assert shown["seconds_label"].startswith("nominal")
    pairs = next(t for t in st.coactivation_section(ctx).tables if t.name == "coactivation-top-pairs")
    for key, (_, layer) in summary.heatmaps.items():
        mine = [r for r in pairs.rows if f"{r['model']} / {r['condition']}" == key]
        assert mine and {r["layer"] for r in mine} == {layer}
    aff = next(t for t in st.affinity_section(ctx).tables if t.name == "affinity")
    assert "uncertainty_coef" in aff.columns and "nmi" not in aff.columns
    assert all(0 <= r["top1_indep"] <= r["top1"] <= 1 for r in aff.rows)


def test_sections_without_traces_skip_with_the_reason(tmp_path):
    from dodoco.findings.synthetic import write_counts_run
    import numpy as np

    counts = np.random.default_rng(0).integers(0, 9, (40, 2, 8)).astype(np.uint32)
    run = write_counts_run(tmp_path / "run", counts, model="synthetic", condition="prose", K=2)
    ctx = _ctx([run], tmp_path / "out")
    for fn in SECTIONS[:3]:
        with pytest.raises(SkipSection, match="token traces"):
            fn(ctx)
    assert st.rebalance_section(ctx).tables  # arrival-order counts need no traces
