import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def observed(tmp_path_factory):
    """Small real runs: tiny qwen3_moe on mock-uniform and prose with token traces, 48 sequences of 64
    tokens (no batch-invariance check, no metrics.parquet: the report needs neither)."""
    from dodoco.models.load import load_model
    from dodoco.observe.runner import observe

    root = tmp_path_factory.mktemp("observed")
    observe(
        load_model("tiny:qwen3_moe"),
        ["mock-uniform", "prose"],
        seq_len=64,
        sequences=48,
        out=str(root / "qwen3"),
        traces=True,
        invariance=False,
        quiet=True,
    )
    return root


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def attachments(observed, folder: Path) -> list[Path]:
    """What the report is built with besides the runs: a GPU replay (a committed H200 file), the same
    file as a CPU dry run would write it, and a simulate result of the runs across two nodes."""
    from dodoco.simulate.api import SimulateConfig, simulate
    from dodoco.store.atomic import json_safe

    gpu = RESULTS / "replay-zoo-nvidia-h200-x4.json"
    doc = json.loads(gpu.read_text())
    for rep in doc["replays"]:
        rep.update(backend="gloo", device={"type": "cpu"}, timing="time.perf_counter (CPU dry run)")
    dry = folder / "replay-dry-run.json"
    dry.write_text(json.dumps(doc))
    sim = folder / "simulate.json"
    res = simulate(SimulateConfig(runs=(str(observed),), cluster="dgx-h200", ep=(2, 4, 8, 16), max_steps=2))
    sim.write_text(json.dumps(json_safe(res.to_dict())))
    return [gpu, dry, sim]


@pytest.fixture(scope="session")
def report_build(observed, tmp_path_factory):
    """The report of the observed runs with every attachment kind, and the audit of every figure
    (``dodoco.report.style.audit``: clipped texts, crowded axes)."""
    from dodoco.report import plots
    from dodoco.report.build import build_report

    out = tmp_path_factory.mktemp("report")
    files = attachments(observed, tmp_path_factory.mktemp("attached"))
    plots.AUDIT = audit = []
    try:
        build_report([observed], out, n_boot=50, attachments=files)
    finally:
        plots.AUDIT = None
    return out, audit


@pytest.fixture(scope="session")
def report_dir(report_build):
    return report_build[0]
