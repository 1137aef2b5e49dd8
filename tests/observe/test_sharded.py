"""Sharded observation under torchrun (gloo, 2 CPU processes) writes the run a single process computes.

The reference is independent of the run writer: the same model and data, run batch by batch in this
process under ``dodoco.capture``, counts concatenated here. A wrong merge (parts out of order, a
rank's batches dropped or taken twice, a resume keyed on the wrong index) differs from it.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import torch

from dodoco.models.load import load_model
from dodoco.observe.capture import capture
from dodoco.observe.runner import _condition_ids
from dodoco.store import open_run

S, T, B = 12, 32, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference():
    """counts [S, L, E] and seq_tokens [S] of tiny qwen3_moe on prose, computed batch by batch here."""
    loaded = load_model("tiny:qwen3_moe")
    ids, _ = _condition_ids(loaded, "prose", T, S, 0)
    with torch.inference_mode(), capture(loaded.model) as cap:
        for start in range(0, S, B):
            loaded.model(input_ids=torch.as_tensor(ids[start : start + B]), use_cache=False)
    return cap.counts(), cap.seq_tokens()


def test_two_ranks_equal_an_independent_single_process_computation(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        f"--master-port={_free_port()}",
        "-m",
        "dodoco.cli",
        *"observe --model tiny:qwen3_moe --conditions prose".split(),
        "--seq-len",
        str(T),
        "--sequences",
        str(S),
        "--batch-size",
        str(B),
        "--out",
        str(tmp_path),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    sharded = open_run(tmp_path / "prose-L32")
    counts, seq_tokens = _reference()
    np.testing.assert_array_equal(sharded.counts, counts)
    np.testing.assert_array_equal(sharded.seq_tokens, seq_tokens)
    assert sharded.manifest.details["ranks"] == 2 and sharded.manifest.sequences == S
