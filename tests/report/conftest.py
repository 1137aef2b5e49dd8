import pytest


@pytest.fixture(scope="session")
def observed(tmp_path_factory):
    """Small real runs: tiny qwen3_moe on mock-uniform and prose with token traces, 48 sequences of 64
    tokens (no batch-invariance check, no metrics.parquet: the report needs neither)."""
    from dodoco.models.load import load_model
    from dodoco.observe.runner import observe

    root = tmp_path_factory.mktemp("observed")
    observe(load_model("tiny:qwen3_moe"), ["mock-uniform", "prose"], seq_len=64, sequences=48, out=str(root / "qwen3"),
            traces=True, invariance=False, quiet=True)
    return root


@pytest.fixture(scope="session")
def report_dir(observed, tmp_path_factory):
    from dodoco.report.build import build_report

    out = tmp_path_factory.mktemp("report")
    build_report([observed], out, n_boot=200)
    return out
