"""Fault injection on `dodoco observe`: every bad model, tokenizer, text or flag is one line and exit
code 2, and the run already in --out is left exactly as it was (--overwrite given on purpose: a
failing check must come before anything is removed)."""

import os
import shutil

import pytest
from faults import one_line, snapshot

from dodoco.store.manifest import Origin, write_stub

TINY = ("--seq-len", 32, "--sequences", 8, "--batch-size", 4)
OBSERVE = ("observe", "--model", "tiny:qwen3_moe", "--conditions", "prose")


@pytest.fixture(scope="session")
def golden(tmp_path_factory):
    """A finished run folder: tiny qwen3_moe on prose, 8 sequences of 32 tokens (runs/prose-L32)."""
    from dodoco.observe.runner import observe

    out = tmp_path_factory.mktemp("golden") / "runs"
    observe("tiny:qwen3_moe", ["prose"], seq_len=32, sequences=8, batch_size=4, out=out, quiet=True)
    return out


@pytest.fixture
def runs(golden, tmp_path):
    shutil.copytree(golden, tmp_path / "runs")
    return tmp_path / "runs"


@pytest.mark.parametrize(
    "which,needles",
    [
        ("dense", ["no MoE layer DODOCO can hook"]),
        ("notok", ["no tokenizer files", "tokenizer.json"]),
        ("noweights", ["no weight files"]),
        ("truncated", ["cannot load", "re-download or re-copy"]),
        ("shard", ["missing 1 weight file(s)", "model-00002-of-00002.safetensors"]),
        ("smallvocab", ["has 100 token(s) but the model embeds 8192"]),
        ("unk", ["encodes to 1 distinct token id(s)", "tokenizer"]),
    ],
)
def test_unusable_checkpoint_is_one_line_and_keeps_the_old_run(which, needles, checkpoints, runs, cli):
    before = snapshot(runs)
    rc, err = cli(
        "observe", "--model", checkpoints[which], "--conditions", "prose", *TINY, "--out", runs, "--overwrite"
    )
    assert rc == 2
    one_line(err, *needles)
    assert snapshot(runs) == before


@pytest.mark.parametrize("name", ["random.bin", "random.txt"])
def test_binary_file_condition(name, runs, tmp_path, cli):
    (tmp_path / name).write_bytes(os.urandom(4000))
    before = snapshot(runs)
    rc, err = cli(
        "observe", "--model", "tiny:qwen3_moe", "--conditions", f"file:{tmp_path / name}", *TINY, "--out", runs
    )
    assert rc == 2
    one_line(err, name, "give UTF-8")
    assert snapshot(runs) == before and sorted(os.listdir(runs)) == ["prose-L32"]  # no stub


@pytest.mark.parametrize(
    "flags,needles",
    [
        (("--conditions", ""), ["names no condition"]),
        (("--conditions", ",,"), ["names no condition"]),
        (("--conditions", "prose", "--seq-len", 5000), ["--seq-len 5000 is beyond", "context of 4096"]),
        (("--conditions", "prose", "--sequences", 0), ["--sequences 0 must be a positive integer"]),
        (("--conditions", "prose", "--dtype", "float8"), ["unknown dtype 'float8'"]),
    ],
)
def test_bad_flags(flags, needles, runs, cli):
    before = snapshot(runs)
    args = dict(zip(("--seq-len", "--sequences", "--batch-size"), (32, 8, 4)))
    args.update(dict(zip(flags[::2], flags[1::2])))
    rc, err = cli("observe", "--model", "tiny:qwen3_moe", *[x for kv in args.items() for x in kv], "--out", runs)
    assert rc == 2
    one_line(err, *needles)
    assert snapshot(runs) == before


def test_out_is_a_file_or_the_run_directory_is_a_file(runs, tmp_path, cli):
    (tmp_path / "afile").write_text("mine")
    rc, err = cli(*OBSERVE, *TINY, "--out", tmp_path / "afile")
    assert rc == 2 and one_line(err, "is a file") and (tmp_path / "afile").read_text() == "mine"
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "prose-L32").write_text("mine too")
    rc, err = cli(
        "observe", "--model", "tiny:qwen3_moe", "--conditions", "prose", *TINY, "--out", tmp_path / "o", "--overwrite"
    )
    assert rc == 2 and one_line(err, "prose-L32 is a file") and (tmp_path / "o" / "prose-L32").read_text() == "mine too"


def test_overwrite_never_removes_what_dodoco_did_not_write(runs, cli):
    theirs = runs / "prose-L32"
    (theirs / "my-notes.txt").write_text("keep me")
    before = snapshot(runs)
    rc, err = cli(*OBSERVE, "--seq-len", 32, "--sequences", 4, "--out", runs, "--overwrite")
    assert rc == 2 and one_line(err, "also holds my-notes.txt", "never removes")
    assert snapshot(runs) == before
    shutil.rmtree(theirs)
    theirs.mkdir()
    (theirs / "sub").mkdir()
    (theirs / "sub" / "data.csv").write_text("1,2\n")
    before = snapshot(runs)
    rc, err = cli(*OBSERVE, *TINY, "--out", runs, "--overwrite")
    assert rc == 2 and one_line(err, "holds no DODOCO run (sub)")
    assert snapshot(runs) == before


def test_observe_overwrite_does_not_replace_an_imported_run(tmp_path, cli):
    import numpy as np

    np.save(tmp_path / "c.npy", np.ones((3, 2, 4), np.uint32))
    assert cli("import", "numpy", tmp_path / "c.npy", "-o", tmp_path / "runs" / "prose-L32")[0] == 0
    before = snapshot(tmp_path / "runs")
    rc, err = cli(*OBSERVE, *TINY, "--out", tmp_path / "runs", "--overwrite")
    assert rc == 2 and one_line(err, "holds an imported run", "replaces only observed runs")
    assert snapshot(tmp_path / "runs") == before


def test_failed_data_check_with_overwrite_keeps_the_old_run(tmp_path, cli):
    text = tmp_path / "corpus.txt"
    text.write_text(" ".join(f"word{i}" for i in range(3000)))
    cond = f"file:{text}"
    assert cli("observe", "--model", "tiny:qwen3_moe", "--conditions", cond, *TINY, "--out", tmp_path / "r")[0] == 0
    before = snapshot(tmp_path / "r")
    rc, err = cli(
        "observe",
        "--model",
        "tiny:qwen3_moe",
        "--conditions",
        cond,
        "--seq-len",
        32,
        "--sequences",
        5000,
        "--out",
        tmp_path / "r",
        "--overwrite",
    )
    assert rc == 2 and one_line(err, "not 5000")
    assert snapshot(tmp_path / "r") == before


def test_a_stub_of_a_start_that_wrote_nothing_never_blocks(tmp_path, cli):
    stub = tmp_path / "runs" / "prose-L32"
    stub.mkdir(parents=True)
    write_stub(stub, {"model": "tiny:qwen3_moe", "sequences": 99}, Origin.OBSERVED)  # an earlier, other start
    rc, err = cli(*OBSERVE, *TINY, "--out", tmp_path / "runs")
    assert rc == 0 and "replaced the stub of an earlier start" in err


def test_second_writer_is_refused_in_one_line(runs, cli):
    from dodoco.store.lock import RunLock

    before = snapshot(runs)
    with RunLock(runs / "prose-L32"):  # as a running observe holds it
        rc, err = cli(
            "observe", "--model", "tiny:qwen3_moe", "--conditions", "prose", *TINY, "--out", runs, "--overwrite"
        )
    assert rc == 2 and one_line(err, "another dodoco process", f"pid {os.getpid()}", "wait for it")
    assert snapshot(runs) == before
