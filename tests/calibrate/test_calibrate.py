"""`dodoco calibrate`: the whole path as a gloo dry run, its file, resuming, and every refusal in one line."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dodoco.cli import main

ARGS = ["--dry-run", "--sizes-mb", "16,32", "--skews", "1,2", "--shapes", "qwen3-30b-a3b"]


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    """One real dry run: torchrun of 2 gloo processes for the dispatch grid, the compute grid on the CPU."""
    d = tmp_path_factory.mktemp("cal")
    p = subprocess.run(
        [sys.executable, "-m", "dodoco.cli", "calibrate", *ARGS, "-o", str(d / "cal.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return d, p


def test_the_dry_run_file(dry):
    from dodoco.compute.grid import calibration_grid

    d, p = dry
    cal = json.loads((d / "cal.json").read_text())
    assert cal["schema"] == "dodoco.calibration/2" and cal["dry_run"] is True
    assert cal["host"]["machine"] == "dry-run-cpu-x2" and cal["host"]["gpu_count"] == 0 and cal["host"]["torch"]
    fits = {(f["dispatcher"], f["N"], f["phase"]): f for f in cal["fits"]}
    assert set(fits) == {("nccl", 2, "dispatch"), ("nccl", 2, "combine")}
    for f in fits.values():
        # 2 sizes x (skew 1, 2) x (hot-receiver, hot-pair); sizes of 16 and 32 units of 128 KiB
        assert f["n_fit"] == 8 and f["fit_sizes_MB"] == [round(16 * 2**17 / 1e6, 1), round(32 * 2**17 / 1e6, 1)]
        assert f["machine"] == "dry-run-cpu-x2"
    status = cal["calibrate"]["dispatchers"]
    assert status["N=2 nccl"]["status"] == "calibrated"
    for name in ("megatron", "megatron-allgather", "nvshmem", "nvshmem-1d", "deepep"):
        assert status[f"N=2 {name}"]["status"] == "not calibrated" and status[f"N=2 {name}"]["reason"]
        assert sum(line.startswith(f"N=2 {name}: not calibrated: ") for line in p.stderr.splitlines()) == 1
    model = cal["compute"]["grouped_mm"]
    assert model["cases"] == len(calibration_grid(max_tokens=256, random_cases=4)) and model["device"] == "cpu"
    assert [s["path"].endswith("dispatch-N2-nccl.json") for s in cal["sources"]] == [True]
    assert "DRY RUN" in p.stdout and not list(d.glob("cal.compute-*.json"))  # a dry run's models stay inside
    assert set(cal["calibrate"]["parts_s"]) == {"dispatch-N2-nccl", "compute-device", "compute-qwen3-30b-a3b"}


def test_simulate_refuses_the_dry_run(dry, tmp_path, capsys):
    from dodoco.findings.synthetic import write_counts_run

    counts = np.random.default_rng(0).poisson(10.0, (8, 1, 8)).astype(np.uint32)
    write_counts_run(tmp_path / "prose-L16", counts, model="m", condition="prose", seq_len=16, K=2)
    assert main(["simulate", str(tmp_path / "prose-L16"), "--ep", "2", "--calibration", str(dry[0] / "cal.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a DRY RUN of dodoco calibrate" in err[0]


def _copy(dry, tmp_path):
    shutil.copytree(dry[0] / "cal.json.parts", tmp_path / "cal.json.parts")
    return tmp_path / "cal.json"


def test_a_rerun_keeps_finished_parts_and_redoes_only_the_missing(dry, tmp_path, monkeypatch, capsys):
    from dodoco.calibrate import dispatch

    out = _copy(dry, tmp_path)
    (tmp_path / "cal.json.parts" / "compute-qwen3-30b-a3b.json").unlink()  # killed during this part
    monkeypatch.setattr(dispatch, "run_dispatch_part", lambda *a: pytest.fail("a finished part ran again"))
    assert main(["calibrate", *ARGS, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("finished earlier, kept") == 2 and "[3/3] expert compute grid, qwen3-30b-a3b" in err
    new, old = json.loads(out.read_text()), json.loads((dry[0] / "cal.json").read_text())
    assert [f["theta"] for f in new["fits"]] == [f["theta"] for f in old["fits"]]  # the same dispatch part


@pytest.mark.parametrize(
    "edit, extra, message",
    [
        (None, ["--skews", "1,3"], "measured with another settings (skews: [1.0, 2.0] there, [1.0, 3.0] now): remove"),
        ("nccl", [], "measured with another host (nccl: '2.99' there, None now): remove"),
    ],
)
def test_a_changed_host_or_settings_refuses_to_resume(dry, tmp_path, capsys, edit, extra, message):
    out = _copy(dry, tmp_path)
    if edit:
        idf = tmp_path / "cal.json.parts" / "identity.json"
        ident = json.loads(idf.read_text())
        ident["host"][edit] = "2.99"
        idf.write_text(json.dumps(ident))
    args = ["--dry-run", "--sizes-mb", "16,32", "--shapes", "qwen3-30b-a3b", *(extra or ["--skews", "1,2"])]
    assert main(["calibrate", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "--work" in err[0]


def test_a_failed_dispatcher_is_kept_and_said(tmp_path, monkeypatch, capsys):
    from dodoco.calibrate import dispatch

    monkeypatch.setattr(
        dispatch,
        "run_dispatch_part",
        lambda cfg, n, name, machine: {
            "machine": machine,
            "dispatcher": name,
            "N": n,
            "failed": "replay failed: rank 1 failed: boom",
        },
    )
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--dry-run", "--no-compute", "-o", str(out)]) == 0
    cal = json.loads(out.read_text())
    assert cal["fits"] == [] and cal["calibrate"]["dispatchers"]["N=2 nccl"] == {
        "status": "failed",
        "reason": "replay failed: rank 1 failed: boom",
    }
    assert "remove " in capsys.readouterr().err  # how to retry it


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--backend", "gloo"],
            "a gloo (CPU) run is not a calibration: run `dodoco calibrate` on the GPUs, or add --dry-run",
        ),
        ([], "no CUDA GPU is visible here"),
        (["--dry-run", "--backend", "nccl"], "--dry-run runs on gloo"),
        (["--dry-run", "--skews", "1.5,2"], "must include 1 (balanced)"),
        (["--dry-run", "--shapes", "gpt-oss"], "unknown expert shape 'gpt-oss'"),
        (["--dry-run", "--ranks", "4"], "--ranks [4]: this run has 2 GPUs"),
    ],
)
def test_refusals_are_one_line(tmp_path, capsys, args, message):
    import torch

    if not args and torch.cuda.is_available():
        pytest.skip("a GPU is visible: that would calibrate it")
    assert main(["calibrate", *args, "-o", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
