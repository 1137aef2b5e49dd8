"""Replay end to end on the gloo backend (CPU dry run, real processes via torchrun) and its errors."""

import json
import os
import subprocess
import sys
import time

import pytest

from dodoco.cli import main


def _dodoco(args, env=None, timeout=60):
    cmd = [sys.executable, "-m", "dodoco.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def test_gloo_replay_three_ranks(runs_dir, tmp_path):
    out = tmp_path / "r.json"
    p = _dodoco(["replay", str(runs_dir), "--condition", "prose", "--backend", "gloo", "--nproc", "3",
                 "--hidden", "8", "--iters", "2", "--warmup", "1", "--skew", "1.5", "--sweep",
                 "--sweep-max", "4K", "--out", str(out)])
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["schema"] == "dodoco.replay/1" and r["N"] == 3 and r["timing"].startswith("time.perf_counter")
    assert {c["condition"] for c in r["cases"]} == {"prose", "mock-uniform", "balanced", "skew-1.5"}
    assert all(c["check"] == "ok" for c in r["cases"])
    assert len(r["cases"]) == 2 * 2 * 3 + 1  # (8 // 3 = 2 steps x 2 layers) x 3 conditions + skew
    for c in r["cases"]:
        assert sum(map(sum, c["splits"])) * 16 == c["bytes_total"]  # rows x H=8 x 2 bytes
        assert c["dispatch"]["p10_ms"] <= c["dispatch"]["median_ms"] <= c["dispatch"]["p90_ms"]
    assert [s["bytes_per_rank"] for s in r["sweep"]] == [1020, 2046, 4092]  # whole multiples of N=3 elements
    assert len(r["overhead"]) == 4
    assert [s["condition"] for s in r["summary"]] == ["prose", "mock-uniform", "balanced", "skew-1.5"]


def test_failing_rank_stops_the_others(runs_dir):
    t0 = time.time()
    p = _dodoco(["replay", str(runs_dir), "--condition", "prose", "--backend", "gloo", "--nproc", "2",
                 "--hidden", "8", "--iters", "2", "--timeout", "15"], env={"DODOCO_REPLAY_FAIL_RANK": "1"})
    assert time.time() - t0 < 30
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == ("error: replay failed: rank 1 failed: RuntimeError: "
                                                 "injected failure (DODOCO_REPLAY_FAIL_RANK=1)")


@pytest.mark.parametrize("extra, message", [
    (["--backend", "nccl"], "NCCL backend needs CUDA GPUs"),
    (["--backend", "gloo", "--hidden", str(10**12)], "GiB per rank x 2 ranks but the host has"),
    (["--backend", "gloo", "--nproc", "16"], "EP=16 x batch=1 needs 16 sequences per step"),
    (["--backend", "gloo", "--dispatcher", "deepep"], "needs the deep_ep package (DeepEP), which is not importable"),
])
def test_bad_input_is_one_line(runs_dir, capsys, extra, message):
    import torch

    from dodoco.replay.deepep import deepep_available

    if extra[1] == "nccl" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if "deepep" in extra and deepep_available():
        pytest.skip("DeepEP is installed here")
    assert main(["replay", str(runs_dir), "--condition", "prose", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    if extra[1] == "nccl":
        assert "--backend gloo" in err[0]
