"""The report: files, PNG validity, HTML opened in headless Chromium, window runs, extensibility."""

import json
import os
import re
import shutil
import struct
import subprocess

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


EXPECTED_FIGURES = {"fig-ep-scan-max-mean.png", "fig-ep-scan-receiver-skew.png", "fig-gini-vs-batch.png",
                    "fig-bands-l64.png", "fig-gini-matrix.png", "fig-gini-matrix-step.png", "fig-lorenz.png",
                    "fig-heatmap-tiny-qwen3-moe-prose-l64.png", "fig-heatmap-tiny-qwen3-moe-mock-uniform-l64.png",
                    "fig-mitigations-tiny-qwen3-moe.png", "fig-neusim-skew.png", "fig-decode-max-mean.png",
                    "fig-decode-receiver-skew.png"}


def test_every_figure_is_a_valid_png_and_embedded(report_dir):
    figs = sorted(p.name for p in report_dir.glob("fig-*.png"))
    assert EXPECTED_FIGURES <= set(figs)
    html = (report_dir / "report.html").read_text()
    for name in figs:
        data = (report_dir / name).read_bytes()
        w, h = png_size(data)
        assert w > 0 and h > 0
    imgs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == len(figs)
    import base64

    assert {base64.b64decode(b) for b in imgs} == {(report_dir / n).read_bytes() for n in figs}
    assert "http://" not in html and "https://" not in html  # self-contained


def test_tables_csv_and_verdicts(report_dir):
    for name in ("runs.csv", "ep-invariance-summary.csv", "mock-vs-real-summary.csv", "bands-l64-summary.csv",
                 "gini-matrix.csv", "mitigations.csv", "neusim.csv", "regimes.csv"):
        lines = (report_dir / name).read_text().splitlines()
        assert len(lines) >= 2 and "," in lines[0], name
    verdicts = json.loads((report_dir / "verdicts.json").read_text())
    assert set(verdicts) == {"ep_invariance", "mock_vs_real", "bands"}
    assert verdicts["ep_invariance"]["verdict"] in ("intrinsic", "placement-sensitive", "mixed")
    assert verdicts["mock_vs_real"]["verdict"] in ("fabricated by mock", "not fabricated")
    regimes = (report_dir / "regimes.csv").read_text()
    assert ",prefill," in regimes and ",decode," in regimes
    runs = (report_dir / "runs.csv").read_text()
    assert "tiny:qwen3_moe" in runs and "prose" in runs and "mock-uniform" in runs
    html = (report_dir / "report.html").read_text()
    for title in ("Runs and provenance", "Verdicts", "EP invariance", "Mock vs real", "Bands",
                  "Model x condition Gini", "Per-layer x expert load", "Lorenz curves", "Mitigations",
                  "Measured vs NeuSim-predicted skew", "Prefill and decode regimes"):
        assert f">{title}</h2>" in html


_CHECK = """<script>window.addEventListener('load', () => {
  const r = [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const p = document.createElement('pre'); p.id = 'img-check'; p.textContent = JSON.stringify(r);
  document.body.appendChild(p); });</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    return None


def test_every_image_loads_in_headless_chromium(report_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not found: install Debian's chromium (apt-get install chromium) to run this check")
    page = tmp_path / "check.html"
    page.write_text((report_dir / "report.html").read_text().replace("</body>", _CHECK + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="img-check">(.*?)</pre>', out.stdout)
    assert m, f"chromium printed no image check (rc {out.returncode}): {out.stderr[-500:]}"
    images = json.loads(m.group(1))
    n_figs = len(list(report_dir.glob("fig-*.png")))
    assert len(images) == n_figs
    assert all(complete and w > 0 and h > 0 for complete, w, h in images), images


def test_window_runs_skip_per_step_sections(observed, tmp_path):
    from dodoco.findings.synthetic import skewed_counts, write_counts_run

    w = write_counts_run(tmp_path / "runs" / "window", skewed_counts(1, 3, 32, assignments=5000),
                         model="prod", condition="serving", seq_len=0, granularity="window")
    path = build_report([w], tmp_path / "rep", n_boot=50)
    html = path.read_text()
    assert "skipped: the EP invariance verdict needs per-step counts" in html
    assert "skipped: per-step Gini against batch size needs per-step counts" in html
    assert (tmp_path / "rep" / "fig-gini-matrix.png").exists() and (tmp_path / "rep" / "fig-lorenz.png").exists()
    assert not (tmp_path / "rep" / "fig-gini-vs-batch.png").exists()
    # mixed with per-step runs: the window run is drawn, the per-step sections use the others
    path = build_report([w, observed], tmp_path / "rep2", n_boot=50)
    html = path.read_text()
    assert f"per-step analysis skipped for runs holding one window aggregate: {w}" in html
    assert (tmp_path / "rep2" / "fig-gini-vs-batch.png").exists()


def test_sections_are_extensible(observed, tmp_path, monkeypatch):
    import dodoco.report.sections  # noqa: F401  (built-ins registered before the patched copy)
    import dodoco.report.sections_ep  # noqa: F401
    from dodoco.report import plots

    monkeypatch.setattr(build_mod, "SECTIONS", list(build_mod.SECTIONS))

    def dispatch_cost(runs, ctx):
        """Dispatch cost"""
        raise SkipSection("no replay JSON given (--attach)")

    def custom(runs, ctx):
        """Custom"""
        png = plots.grouped_bars(["a", "b"], {"real": [0.5, 0.2], "mock": [0.1, 0.3]}, "fraction", "t")
        return Section("Custom", "<p>hello</p>", [Figure("custom", png, "bars")], [Table("custom", [{"x": 1}])])

    build_mod.register_section(dispatch_cost)
    build_mod.register_section(custom, before="provenance")
    assert build_mod.SECTIONS[0] is custom
    path = build_report([observed], tmp_path / "r", n_boot=50)
    html = path.read_text()
    assert "skipped: no replay JSON given (--attach)" in html and ">Dispatch cost</h2>" in html
    assert html.index(">Custom</h2>") < html.index(">Runs and provenance</h2>")
    assert png_size((tmp_path / "r" / "fig-custom.png").read_bytes())[0] > 0
    assert (tmp_path / "r" / "custom.csv").read_text().splitlines() == ["x", "1"]
