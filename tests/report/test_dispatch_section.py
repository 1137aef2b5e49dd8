"""Dispatch-cost sections render attached replay and simulate results (the committed H200 JSON)."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from dodoco.errors import DodocoError
from dodoco.report.build import SkipSection
from dodoco.report.sections_dispatch import replay_section, simulate_section

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def _png_ok(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") > 0


def test_replay_section_from_committed_results():
    replay = RESULTS / "replay-nvidia-h200-x8.json"
    section = replay_section([], SimpleNamespace(attachments=[replay]))
    assert len(section.figures) == 3 and all(_png_ok(f.png) for f in section.figures)
    summary = next(t for t in section.tables if t.name.startswith("replay-"))
    raw = json.loads(replay.read_text())
    assert len(summary.rows) == sum(len(r["summary"]) for r in raw["replays"])
    assert {r["N"] for r in summary.rows} == {2, 4, 8}
    assert "8 x NVIDIA H200" in section.html


def test_simulate_section_and_skips(tmp_path):
    rows = json.loads((RESULTS / "prediction-ep8-dgx-h200.json").read_text())["predictions"]
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps(rows))
    section = simulate_section([], SimpleNamespace(attachments=[sim]))
    assert _png_ok(section.figures[0].png) and len(section.tables[0].rows) == len(rows)
    with pytest.raises(SkipSection, match="no replay results attached"):
        replay_section([], SimpleNamespace(attachments=[sim]))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DodocoError, match="bad.json is not readable JSON"):
        replay_section([], SimpleNamespace(attachments=[bad]))
