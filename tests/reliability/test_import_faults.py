"""Fault injection on `dodoco import`: bad inputs are one line and exit code 2, interrupted imports
leave no temp files, and an existing run is never changed by a failed or refused import."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from faults import one_line, snapshot

from dodoco.store import open_run


@pytest.fixture
def existing(tmp_path, cli):
    """An imported run at tmp/run (counts [3, 2, 4]) that every failing import below must leave alone."""
    np.save(tmp_path / "ok.npy", np.arange(24, dtype=np.uint32).reshape(3, 2, 4) + 1)
    assert cli("import", "numpy", tmp_path / "ok.npy", "-o", tmp_path / "run")[0] == 0
    return tmp_path / "run"


def _write(tmp_path, name: str, content) -> str:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif isinstance(content, np.ndarray):
        np.save(p, content) if name.endswith(".npy") else np.savez(p, counts=content)
    else:
        p.write_text(content)
    return str(p)


DEEP = "[" * 100_000 + "]" * 100_000
BAD = {
    "empty-array": ("numpy", "empty.npy", np.zeros((0, 2, 4), np.uint32), ["empty array holds nothing"]),
    "object-npz": ("numpy", "obj.npz", np.array([[1, 2], [3]], dtype=object), ["Python objects"]),
    "ragged-json": ("sglang", "ragged.json", json.dumps({"logical_count": [[1, 2], [3]]}), ["ragged"]),
    "deep-json": ("sglang", "deep.json", '{"logical_count": ' + DEEP + "}", ["nested too deeply"]),
    "binary-json": ("sglang", "random.json", os.urandom(300), ["not valid JSON"]),
    "far-expert-id": (
        "table",
        "far.csv",
        "layer,expert,count\n0,3,5\n0,100000000,1\n",
        ["expert id 100000000", "far beyond the others (next largest 3)", "--num-experts"],
    ),
    "far-layer-id": (
        "table",
        "farl.csv",
        "layer,expert,count\n0,3,5\n1,3,5\n100000000,3,1\n",
        ["layer id 100000000", "far beyond"],
    ),
    "binary-pt": ("sglang", "random.pt", os.urandom(3000), ["random.pt"]),
    "binary-csv": ("table", "random.csv", os.urandom(3000), ["random.csv"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_changes_nothing(case, existing, tmp_path, cli):
    fmt, name, content, needles = BAD[case]
    path = _write(tmp_path, name, content)
    before = snapshot(tmp_path)
    rc, err = cli("import", fmt, path, "-o", existing, "--overwrite")
    assert rc == 2
    one_line(err, *needles)
    assert snapshot(tmp_path) == before
    assert not list(tmp_path.glob(".*dodoco-import"))


def test_num_experts_allows_a_far_id(tmp_path, cli):
    path = _write(tmp_path, "far.csv", "layer,expert,count\n0,3,5\n0,4999,1\n")
    rc, err = cli("import", "table", path, "-o", tmp_path / "a")
    assert rc == 2 and one_line(err, "expert id 4999", "--num-experts 5000")
    assert cli("import", "table", path, "-o", tmp_path / "b", "--num-experts", 5000)[0] == 0
    assert open_run(tmp_path / "b").counts.shape == (1, 1, 5000)


def test_output_that_is_a_file_or_holds_other_files(tmp_path, cli, existing):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine too")
    before = snapshot(tmp_path)
    rc, err = cli("import", "numpy", tmp_path / "ok.npy", "-o", tmp_path / "afile", "--overwrite")
    assert rc == 2 and one_line(err, "afile is a file")
    rc, err = cli("import", "numpy", tmp_path / "ok.npy", "-o", tmp_path / "folder", "--overwrite")
    assert rc == 2 and one_line(err, "holds no DODOCO run (notes.txt)")
    rc, err = cli("import", "numpy", tmp_path / "ok.npy", "-o", tmp_path / "afile" / "run")
    assert rc == 2 and one_line(err, "afile")
    assert snapshot(tmp_path) == before


def test_interrupted_streaming_write_leaves_no_temp_file(tmp_path, cli, monkeypatch, existing):
    from dodoco.ingest import stream

    np.save(tmp_path / "big.npy", np.ones((64, 2, 4), np.uint32))
    calls = []

    def interrupted(self, data, aligned):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(stream._Sink, "write", interrupted)
    before = snapshot(existing)
    rc, _ = cli("import", "numpy", tmp_path / "big.npy", "-o", existing, "--overwrite")
    assert rc == 130 and calls
    leftovers = [p.name for p in existing.iterdir() if p.suffix == ".tmp"]
    assert not leftovers and not list(tmp_path.glob(".*dodoco-import"))
    assert snapshot(existing).keys() >= {"manifest.json"}
    assert before.keys() - snapshot(existing).keys() <= {"counts.npy", "seq_tokens.npy", "metrics.parquet"}


_SLOW_IMPORT = """
import sys, time
from dodoco.ingest import stream
real = stream._Sink.write
def slow(self, data, aligned):
    open(sys.argv[3], "w").close()  # tell the test that the temp file exists
    time.sleep(5)  # the signal arrives now; the chunk write then finishes, as a real one would
    real(self, data, aligned)
stream._Sink.write = slow
from dodoco.cli import main
sys.exit(main(["import", "numpy", sys.argv[1], "-o", sys.argv[2]]))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_import_leaves_no_temp_file_behind(sig, tmp_path, cli):
    """SIGTERM: the import cleans up as on Ctrl-C. SIGKILL: nothing can run, so `validate` names the
    temp file and the next import into the same run removes it."""
    np.save(tmp_path / "big.npy", np.ones((64, 2, 4), np.uint32))
    flag, run = tmp_path / "writing", tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_IMPORT, str(tmp_path / "big.npy"), str(run), str(flag)],
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(600):
        if flag.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert flag.exists(), proc.stderr.read() if proc.poll() is not None else "import never started writing"
    assert [p for p in run.iterdir() if p.suffix == ".tmp"]  # the temp file of counts.npy exists now
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    temps = [p.name for p in run.iterdir() if p.suffix == ".tmp"] if run.exists() else []
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err
        assert not temps and not list(tmp_path.glob(".*dodoco-import"))
        return
    assert temps
    from dodoco.cli import main

    assert main(["validate", str(run)]) == 1
    assert cli("import", "numpy", tmp_path / "big.npy", "-o", run)[0] == 0
    assert not [p for p in run.iterdir() if p.suffix == ".tmp"] and not list(tmp_path.glob(".*dodoco-import"))
    assert main(["validate", str(run)]) == 0
