"""Dispatch-cost sections: attached replay (dodoco.replay/2 rows and the committed earlier H200 files)
and simulate results, each with its provenance; a trace from another model is named as such."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dodoco.errors import DodocoError
from dodoco.report.attachments import load_attachments, provenance_rows
from dodoco.report.section import SkipSection
from dodoco.report.sections_dispatch import dry_run_section, replay_section, simulate_section
from dodoco.report.style import Style

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def _ctx(*files, models=("tiny:qwen3_moe",)):
    return SimpleNamespace(
        attachments=load_attachments(files),
        runs=[SimpleNamespace(model=m) for m in models],
        cached=lambda key, fn: fn(),
        style=Style(["prose", "mock-uniform"], ["contiguous"]),
    )


def _png_ok(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") > 0


def test_earlier_replay_file_names_its_trace_and_shows_every_target():
    replay = RESULTS / "replay-zoo-nvidia-h200-x4.json"
    section = replay_section(_ctx(replay))
    assert all(_png_ok(f.png) for f in section.figures) and len(section.figures) == 3
    prov = section.tables[0].rows[0]
    # the file's own notes say tiny:qwen3_moe; its replays' sources say zoo:qwen3_moe, and that is what counts
    assert prov["trace models"] == "zoo:qwen3_moe"
    assert prov["provenance"] == (
        "trace from another model: zoo:qwen3_moe, not one of this report's models (tiny:qwen3_moe)"
    )
    assert any("trace from another model: zoo:qwen3_moe" in n for n in section.notes)
    targets = next(t for t in section.tables if t.name.startswith("targets-")).rows
    busbw = next(r for r in targets if r["target"].startswith("busbw"))
    assert busbw["busbw_GBps"] > 0 and busbw["anchor"]  # shown, not blank
    assert "median_abs_err_pct_by_kind.real (held out)" in next(r for r in targets if r["target"] == "sim_err_N2")
    assert (
        replay_section(_ctx(replay, models=("zoo:qwen3_moe",))).tables[0].rows[0]["provenance"]
        == "trace from this report's models"
    )


def _replay2(tmp_path) -> Path:
    """A dodoco.replay/2 file shaped as docs/replay.md specifies (schema example, not a measurement)."""
    rows = []
    for disp, base in (("nccl", 0.50), ("nvshmem", 0.62)):
        for kind, rho in (("balanced", 1.0), ("skew", 1.5), ("skew", 2.0), ("real", 1.3)):
            for size in (1 << 24, 1 << 28):
                t = base * size / (1 << 28) * (1 + 0.6 * (rho - 1))
                rows.append(
                    {
                        "dispatcher": disp,
                        "N": 4,
                        "kind": kind,
                        "pattern": "hot-receiver"
                        if kind == "skew"
                        else ("uniform" if kind == "balanced" else "routing"),
                        "rho": rho,
                        "model": "zoo:qwen3_moe",
                        "condition": "prose",
                        "step": 0,
                        "layer": 0,
                        "per_rank_bytes": size,
                        "receiver_skew": rho,
                        "dispatch": {"median_ms": t, "p10_ms": 0.97 * t, "p90_ms": 1.04 * t},
                        "combine": {"median_ms": t, "p10_ms": t, "p90_ms": t},
                        "check": "ok",
                    }
                )
    doc = {
        "schema": "dodoco.replay/2",
        "N": 4,
        "backend": "nccl",
        "device": {"name": "NVIDIA H200", "count": 4},
        "source": {"runs": ["runs/zoo/prose-L256"], "placement": "contiguous", "part": "all"},
        "dispatchers": {
            "nccl": {"status": "measured"},
            "deepep": {"status": "not measured", "reason": "No module named 'deep_ep'"},
        },
        "rows": rows,
        "summary": [{"dispatcher": "nccl", "condition": "prose", "N": 4, "dispatch_ms": 0.5}],
    }
    p = tmp_path / "replay2.json"
    p.write_text(json.dumps(doc))
    return p


def test_replay2_plots_time_against_skew_per_dispatcher_and_size(tmp_path):
    section = replay_section(_ctx(_replay2(tmp_path)))
    fig = next(f for f in section.figures if f.name.startswith("dispatch-vs-skew"))
    assert _png_ok(fig.png)
    from dodoco.report.sections_dispatch import _points

    panels = _points(json.loads((tmp_path / "replay2.json").read_text())["rows"])
    assert list(panels) == ["N=4, about 16 MiB per rank", "N=4, about 256 MiB per rank"]
    assert {p["dispatcher"] for p in panels["N=4, about 16 MiB per rank"]} == {"nccl", "nvshmem"}
    status = next(t for t in section.tables if t.name.startswith("dispatchers-")).rows
    assert {"N": 4, "dispatcher": "deepep", "status": "not measured", "reason": "No module named 'deep_ep'"} in status


def test_simulate_rows_of_two_models_are_two_panels_with_provenance(tmp_path):
    base = {"cluster": "dgx-h200", "dispatcher": "nccl", "placement": "contiguous", "balanced_ms": 0.3}
    rows = [
        {**base, "model": m, "run": f"runs/{m}/prose", "condition": "prose", "N": n, "dispatch_ms": 0.1 * n + k}
        for k, m in enumerate(("zoo:qwen3_moe", "zoo:deepseek_v2"))
        for n in (8, 16, 32)
    ]
    doc = {
        "schema": "dodoco.simulate/1",
        "title": "UNCALIBRATED prediction on dgx-h200",
        "calibration": {"source": "none: uncalibrated (nominal datasheet numbers)"},
        "notes": ["predictions of the model, not measurements"],
        "rows": rows,
    }
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps(doc))
    section = simulate_section(_ctx(sim, models=("zoo:qwen3_moe",)))
    from dodoco.report.sections_dispatch import _sim_panels

    assert sorted(_sim_panels(rows)) == ["zoo:deepseek_v2", "zoo:qwen3_moe"]  # never one line through both
    again = rows + [{**r, "run": "runs/other/prose"} for r in rows if r["model"] == "zoo:qwen3_moe"]
    assert sorted(_sim_panels(again)) == [
        "zoo:deepseek_v2",
        "zoo:qwen3_moe (other/prose)",
        "zoo:qwen3_moe (zoo:qwen3_moe/prose)",
    ]
    assert "UNCALIBRATED" in section.html and _png_ok(section.figures[0].png)
    prov = section.tables[0].rows[0]
    assert prov["calibration"].startswith("none: uncalibrated") and "zoo:deepseek_v2" in prov["provenance"]
    assert "sim.json: predictions of the model, not measurements" in section.notes


def test_skips_and_bad_files(tmp_path):
    with pytest.raises(SkipSection, match="no GPU replay attached"):
        replay_section(_ctx())
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DodocoError, match="bad.json is not JSON"):
        load_attachments([bad])
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(DodocoError, match="neither a replay nor a simulate result file"):
        load_attachments([other])
    legacy = tmp_path / "rows.json"
    legacy.write_text(json.dumps([{"condition": "prose", "N": 8, "dispatch_ms": 0.4}]))
    (a,) = load_attachments([legacy])
    assert provenance_rows([a], {"m"})[0]["provenance"] == "the file does not name the model its trace comes from"


def test_a_cpu_dry_run_is_never_shown_as_a_gpu_measurement(tmp_path):
    doc = json.loads(_replay2(tmp_path).read_text())
    for r in doc["rows"]:
        r["floor_ms"], r["vs_floor"] = 0.001, 1239.0  # what an earlier gloo replay wrote
    doc.update(
        backend="gloo",
        device={"type": "cpu", "torch": "2.13.0+cpu"},
        summary=[
            {
                "dispatcher": "nccl",
                "condition": "prose",
                "N": 4,
                "dispatch_ms": 9.6,
                "floor_ms": 0.01,
                "vs_floor": 1239.0,
                "vs_balanced": 1.23,
            }
        ],
    )
    dry = tmp_path / "dry.json"
    dry.write_text(json.dumps(doc))
    with pytest.raises(SkipSection, match="dry.json: CPU dry runs, in the next section"):
        replay_section(_ctx(dry))
    section = dry_run_section(_ctx(dry))
    assert "not GPU measurements" in section.title and not section.figures
    table = next(t for t in section.tables if t.name.startswith("dry-run-"))
    assert all("floor_ms" not in r and "vs_floor" not in r for r in table.rows)
    assert "floor_ms" not in table.columns and "vs_floor" not in table.columns
    assert table.rows[0]["measured_on"].startswith("dry run: gloo on CPU")
    assert section.tables[0].rows[0]["machine"].endswith("CPU dry run, no GPU (not a measurement)")
    assert any("CPU dry run" in n for n in section.notes)
    with pytest.raises(SkipSection):
        dry_run_section(_ctx(_replay2(tmp_path)))  # a GPU replay is not a dry run


def test_simulate_figure_says_nominal_where_a_nominal_nic_was_used(tmp_path):
    base = {
        "cluster": "dgx-h200",
        "dispatcher": "nccl",
        "placement": "contiguous",
        "balanced_ms": 0.3,
        "model": "m",
        "run": "runs/m/prose",
        "condition": "prose",
        "nvlink": "calibrated: x8 N=8 nccl: blend",
    }
    rows = [
        {**base, "N": n, "dispatch_ms": 0.1 * n, "nic": "-" if n <= 8 else "nominal (not measured): 50 GB/s"}
        for n in (8, 16, 32)
    ]
    doc = {"schema": "dodoco.simulate/1", "calibration": {"source": "nvidia-h200-x8 (NVIDIA H200)"}, "rows": rows}
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps(doc))
    from dodoco.report import plots_dispatch
    from dodoco.report.sections_dispatch import _sim_panels, dispatch_nominal

    assert [dispatch_nominal(r) for r in rows] == [False, True, True]
    assert _sim_panels(rows)["m"][0]["nominal"] == [False, True, True]
    titles = []
    real = plots_dispatch.predicted_vs_n
    plots_dispatch.predicted_vs_n = lambda panels, title, style: titles.append(title) or real(panels, title, style)
    try:
        simulate_section(_ctx(sim, models=("m",)))
    finally:
        plots_dispatch.predicted_vs_n = real
    assert titles[0].startswith("Calibrated up to N=8, with nominal terms at N=16,32")
    assert not titles[0].startswith("Calibrated prediction")
