"""Replay end to end on the gloo backend (CPU dry run, real processes via torchrun) and its errors."""

import json
import time

import pytest

from dodoco.cli import main


def test_gloo_replay_three_ranks_every_dispatcher(runs_dir, tmp_path, cli_child):
    out = tmp_path / "r.json"
    flags = (
        "--condition prose --backend gloo --nproc 3 --hidden 16 --iters 2 --warmup 1 --skew 1.5 "
        "--skew-patterns hot-receiver,hot-pair --grid-sizes 4K --grid-skews 1,2 --grid-experts 24 --dispatcher all "
        "--sweep --sweep-max 4K -o"
    )
    p = cli_child("replay", runs_dir, *flags.split(), out)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["schema"] == "dodoco.replay/2" and r["N"] == 3 and r["timing"].startswith("time.perf_counter")
    st = r["dispatchers"]
    assert st["nccl"]["status"] == "measured"
    for name in ("megatron", "megatron-allgather", "nvshmem", "nvshmem-1d", "deepep"):
        assert st[name]["status"] == "not measured" and st[name]["reason"]
    assert {x["dispatcher"] for x in r["rows"]} == {"nccl"}
    kinds = [x["kind"] for x in r["rows"]]
    assert kinds.count("real") == kinds.count("mock") == kinds.count("balanced") == 2 * 2  # 8 // 3 = 2 steps x 2 layers
    assert [x["condition"] for x in r["rows"] if x["kind"] == "skew"] == ["skew-hot-receiver-1.5", "skew-hot-pair-1.5"]
    assert [(x["pattern"], x["rho"]) for x in r["rows"] if x["kind"] == "grid"] == [
        ("hot-receiver", 1.0),
        ("hot-receiver", 2.0),
        ("hot-pair", 1.0),
        ("hot-pair", 2.0),
    ]
    for x in r["rows"]:
        assert x["check"] == "ok"
        assert sum(map(sum, x["splits"])) * 32 == x["bytes_total"] == 3 * x["per_rank_bytes"]  # rows x H=16 x 2 B
        assert x["dispatch"]["p10_ms"] <= x["dispatch"]["median_ms"] <= x["dispatch"]["p90_ms"]
        assert set(x["stages"]) == {"all_to_all", "all_to_all back"}
        assert x["floor_ms"] is None and x["vs_floor"] is None  # a CPU dry run has no link floor
    assert [s["bytes_per_rank"] for s in r["sweep"]] == [1020, 2046, 4092]  # whole multiples of N=3 elements
    assert len(r["overhead"]) == 4 + 2 and all(o["direct_ms"] > 0 for o in r["overhead"])  # balanced + grid rho=1
    assert "not measured" in p.stdout and "harness overhead" in p.stdout


def test_failing_rank_stops_the_others(runs_dir, cli_child):
    t0 = time.time()
    flags = "--condition prose --backend gloo --nproc 2 --hidden 16 --iters 2 --timeout 15"
    p = cli_child("replay", runs_dir, *flags.split(), env={"DODOCO_REPLAY_FAIL_RANK": "1"})
    assert time.time() - t0 < 45
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == (
        "error: replay failed: rank 1 failed: RuntimeError: injected failure (DODOCO_REPLAY_FAIL_RANK=1)"
    )


def _megatron_importable():
    from dodoco.replay.dispatchers import missing

    return missing("megatron") is None


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--backend", "nccl"], "NCCL backend needs CUDA GPUs"),
        (["--backend", "gloo", "--hidden", str(10**11)], "GiB per rank x 2 ranks but the host has"),
        (["--backend", "gloo", "--nproc", "8", "--batch", "2"], "EP=8 x batch=2 needs 16 sequences per step"),
        (["--backend", "gloo", "--dispatcher", "megatron"], "needs megatron.core, which does not import here"),
        (["--backend", "gloo", "--dispatcher", "deepep"], "needs deep_ep, which does not import here"),
        (
            ["--backend", "gloo", "--dispatcher", "nvshmem"],
            "none of the dispatchers named can run here: nvshmem: needs CUDA",
        ),
        (
            ["--backend", "gloo", "--grid-sizes", "4K", "--grid-skews", "2", "--grid-experts", "2", "--grid-topk", "2"],
            "grid-hot-receiver case: rank 0 sends 2 rows to one expert but has only 1 tokens of K=2",
        ),
    ],
)
def test_bad_input_is_one_line(runs_dir, capsys, extra, message):
    import torch

    if extra[1] == "nccl" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if "megatron" in extra and _megatron_importable():
        pytest.skip("megatron-core imports here")
    if "deepep" in extra:
        from dodoco.replay.dispatchers import missing

        if missing("deepep") is None:
            pytest.skip("DeepEP is installed here")
    assert main(["replay", str(runs_dir), "--condition", "prose", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    if extra[1] == "nccl":
        assert "--backend gloo" in err[0]
