"""The report: files, PNG validity, one section per SECTIONS entry, and every section checked in
headless Chromium (figures load, no table has an empty column), with a screenshot for a reviewer."""

import base64
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from dodoco.report import build as build_mod
from dodoco.report.build import Figure, Section, SkipSection, Table, build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; AssertionError if the bytes are not a PNG."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, "first chunk is not IHDR"
    return struct.unpack(">II", data[16:24])


EXPECTED_FIGURES = {
    "fig-ep-scan-max-mean.png",
    "fig-ep-scan-receiver-skew.png",
    "fig-gini-vs-batch.png",
    "fig-bands-seq-len-64.png",
    "fig-gini-matrix.png",
    "fig-lorenz.png",
    "fig-heatmap-tiny-qwen3-moe.png",
    "fig-mitigations-tiny-qwen3-moe.png",
    "fig-neusim-skew.png",
    "fig-decode-max-mean.png",
    "fig-decode-receiver-skew.png",
}
TITLES = (
    "Runs and provenance",
    "Verdicts",
    "EP invariance",
    "Mock vs real",
    "Bands",
    "Model x condition Gini",
    "Per-layer x expert load",
    "Lorenz curves",
    "Mitigations",
    "Measured vs NeuSim-predicted skew",
    "Prefill and decode regimes",
    "Expert co-activation within a layer (token traces)",
    "Cross-layer expert affinity (token traces)",
    "Placements fitted on token traces (held out)",
    "Rebalancing over time: refit interval and window",
    "Dispatch cost measured on GPUs (replay)",
    "Replay dry runs on CPU (gloo): pipeline checks, not GPU measurements",
    "Predicted dispatch at larger EP (simulate)",
)


def test_every_figure_is_a_valid_png_and_embedded(report_dir):
    figs = sorted(p.name for p in report_dir.glob("fig-*.png"))
    assert EXPECTED_FIGURES <= set(figs)
    html = (report_dir / "report.html").read_text()
    for name in figs:
        w, h = png_size((report_dir / name).read_bytes())
        assert w > 0 and h > 0
    imgs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == len(figs)
    assert {base64.b64decode(b) for b in imgs} == {(report_dir / n).read_bytes() for n in figs}
    assert "http://" not in html and "https://" not in html  # self-contained


def test_sections_in_order_tables_and_findings(report_dir):
    html = (report_dir / "report.html").read_text()
    positions = [html.index(f">{t}</h2>") for t in TITLES]
    assert positions == sorted(positions) and len(build_mod.SECTIONS) == len(TITLES)
    assert isinstance(build_mod.SECTIONS, tuple)
    for name in (
        "runs.csv",
        "ep-invariance-summary.csv",
        "mock-vs-real-summary.csv",
        "bands-summary.csv",
        "gini-matrix.csv",
        "mitigations.csv",
        "neusim.csv",
        "regimes.csv",
    ):
        lines = (report_dir / name).read_text().splitlines()
        assert len(lines) >= 2 and "," in lines[0], name
    f = json.loads((report_dir / "findings.json").read_text())
    assert set(f["verdicts"]) == {"ep_invariance", "mock_vs_real", "bands"}
    assert all(v["sentences"] for v in f["verdicts"].values())
    assert f["verdicts"]["ep_invariance"]["sentences"][0] in html  # the sentences are in the report
    regimes = (report_dir / "regimes.csv").read_text()
    assert ",prefill," in regimes and ",decode," in regimes
    # built with a GPU replay, the same replay as a CPU dry run, and a simulate result across two nodes
    dry_h2 = ">Replay dry runs on CPU (gloo): pipeline checks, not GPU measurements</h2>"
    gpu = html[html.index(">Dispatch cost measured on GPUs (replay)</h2>") : html.index(dry_h2)]
    assert "replay-zoo-nvidia-h200-x4.json" in gpu and "replay-dry-run.json" not in gpu
    assert "measured: 4 x NVIDIA H200" in gpu
    dry = html[html.index(dry_h2) : html.index(">Predicted dispatch at larger EP (simulate)</h2>")]
    assert "replay-dry-run.json" in dry and "vs_floor" not in dry and "dry run: gloo on CPU" in dry
    assert "Toy models: tiny:qwen3_moe" in html[: html.index("<nav>")]
    assert json.loads((report_dir / ".dodoco-report.json").read_text())["files"] == sorted(
        p.name for p in report_dir.iterdir() if not p.name.startswith(".")
    )


_CHECK = """<script>window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('main > section')].map(s => ({
    id: s.id,
    images: [...s.querySelectorAll('img')].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
    emptyColumns: [...s.querySelectorAll('table')].map(t => {
      const rows = [...t.querySelectorAll('tbody tr')];
      const n = t.querySelectorAll('thead th').length;
      return [...Array(n).keys()].filter(j => rows.every(r => {
        const c = r.children[j]; return !c || ['', '-'].includes(c.textContent.trim()); })).length; }),
  }));
  const p = document.createElement('pre'); p.id = 'check'; p.textContent = JSON.stringify(out);
  document.body.appendChild(p); });</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    return None


def _browser(tmp_path, *args):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not found: install Debian's chromium (apt-get install chromium; .ci/run does)")
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_every_section_in_headless_chromium(report_dir, tmp_path):
    page = tmp_path / "check.html"
    page.write_text((report_dir / "report.html").read_text().replace("</body>", _CHECK + "</body>"))
    out = _browser(tmp_path, "--virtual-time-budget=15000", "--dump-dom", page.as_uri())
    m = re.search(r'<pre id="check">(.*?)</pre>', out.stdout)
    assert m, f"chromium printed no check (rc {out.returncode}): {out.stderr[-500:]}"
    sections = json.loads(m.group(1).replace("&quot;", '"'))
    assert len(sections) == len(TITLES)
    for s in sections:
        assert all(complete and w > 0 and h > 0 for complete, w, h in s["images"]), s
        assert not any(s["emptyColumns"]), f"section {s['id']} has a table with an empty column: {s}"
    n_images = sum(len(s["images"]) for s in sections)
    assert n_images == len(list(report_dir.glob("fig-*.png")))


def test_screenshot_of_the_top_of_the_report(report_dir, tmp_path):
    shot = tmp_path / "report-top.png"
    out = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", (report_dir / "report.html").as_uri())
    assert shot.exists(), f"no screenshot (rc {out.returncode}): {out.stderr[-500:]}"
    w, h = png_size(shot.read_bytes())
    assert (w, h) == (1280, 1600)
    if os.environ.get("DODOCO_SCREENSHOT_DIR"):
        dest = Path(os.environ["DODOCO_SCREENSHOT_DIR"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "report-top.png")


def test_sections_are_an_explicit_tuple(observed, tmp_path, monkeypatch):
    from dodoco.report import plots

    def custom(ctx):
        """Custom"""
        png = plots.grouped_bars(["a", "b"], {"prose": [0.5, 0.2]}, "fraction", "t", ctx.style)
        return Section("Custom", "<p>hello</p>", [Figure("custom", png, "bars")], [Table("custom", [{"x": 1}])])

    def absent(ctx):
        """Absent data"""
        raise SkipSection("nothing attached")

    monkeypatch.setattr(build_mod, "SECTIONS", (custom, build_mod.SECTIONS[0], absent))
    html = build_report([observed], tmp_path / "r", n_boot=50).read_text()
    assert html.index(">Custom</h2>") < html.index(">Runs and provenance</h2>") < html.index(">Absent data</h2>")
    assert "skipped: nothing attached" in html and ">Verdicts</h2>" not in html
    assert png_size((tmp_path / "r" / "fig-custom.png").read_bytes())[0] > 0
    assert (tmp_path / "r" / "custom.csv").read_text().splitlines() == ["x", "1"]


def test_window_runs_are_one_step_and_flagged(observed, tmp_path):
    pytest.importorskip("dodoco.ep.steps", reason="window sources come with dodoco.ep.steps")
    from dodoco.findings.synthetic import skewed_counts, write_counts_run

    w = write_counts_run(
        tmp_path / "runs" / "window",
        skewed_counts(1, 3, 32, assignments=5000),
        model="prod",
        condition="serving",
        kind="real",
        seq_len=0,
        granularity="window",
    )
    html = build_report([w, observed], tmp_path / "rep", n_boot=50).read_text()
    f = json.loads((tmp_path / "rep" / "findings.json").read_text())
    ev = [e for e in f["verdicts"]["ep_invariance"]["tables"]["evidence"] if e["model"] == "prod"]
    assert ev and all(e["steps"] == 1 and e["few_steps"] and e["max_mean_lo"] is None for e in ev)
    assert "prod/serving (seq_len 0" in html and "not judged" in html
