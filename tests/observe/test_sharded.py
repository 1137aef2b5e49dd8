"""Sharded observation under torchrun (gloo, 2 CPU processes) writes the same run as one process."""

import os
import socket
import subprocess
import sys

import numpy as np

from dodoco.store import open_run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _observe(out, nproc: int):
    args = ["observe", "--model", "tiny:qwen3_moe", "--conditions", "prose", "--seq-len", "32",
            "--sequences", "12", "--batch-size", "2", "--out", str(out)]
    if nproc == 1:
        cmd = [sys.executable, "-m", "dodoco.cli", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
               f"--master-port={_free_port()}", "-m", "dodoco.cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return open_run(out / "prose-L32")


def test_two_ranks_equal_one(tmp_path):
    single = _observe(tmp_path / "one", 1)
    sharded = _observe(tmp_path / "two", 2)
    np.testing.assert_array_equal(sharded.counts, single.counts)
    np.testing.assert_array_equal(sharded.seq_tokens, single.seq_tokens)
    assert sharded.manifest.identity == single.manifest.identity
    assert sharded.manifest.details["ranks"] == 2 and single.manifest.details["ranks"] == 1
    assert sharded.manifest.files["counts.npy"].sha256 == single.manifest.files["counts.npy"].sha256
