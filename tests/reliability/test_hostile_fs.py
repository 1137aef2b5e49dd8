"""Issue 21, files outside DODOCO's own: links, locks, foreign folders, special files, full disks.

Each case runs a command against a planted trick and checks that the user's files outside the run
(tmp/outside, from the ``sandbox`` fixture: a precious file, a file named like a part, one named
like a temp file) are byte-identical afterwards, and that the command ends in one line with a
non-zero exit, or succeeds without touching them.

Which wrong implementation still passes: a lock opened without O_NOFOLLOW truncates precious.txt;
cleanup that follows ``_parts`` deletes the part-named and temp-named files outside; a writer that
trusts file names claims the user's counts.npy; reads that open before checking hang on a FIFO.
"""

import errno
import json
import os

import numpy as np
import pytest
from faults import interrupt_after, one_line, snapshot

TINY = ("--seq-len", 32, "--sequences", 8, "--batch-size", 4)
OBSERVE = ("observe", "--model", "tiny:qwen3_moe", "--conditions", "prose")


def _observe(out, *extra):
    return (*OBSERVE, *TINY, "--out", out, *extra)


def _interrupted_stub(sandbox, cli, monkeypatch):
    """An unfinished observe of tmp/new/prose-L32 with one part written: the rerun would resume it."""
    undo = interrupt_after(monkeypatch, 2)
    assert cli(*_observe(sandbox.root / "new"))[0] == 130
    undo()
    return sandbox.root / "new" / "prose-L32"


@pytest.mark.parametrize("state", ["unfinished", "finished-overwrite"])
def test_parts_as_a_link_is_never_followed(state, sandbox, cli, monkeypatch):
    if state == "unfinished":
        run, argv = _interrupted_stub(sandbox, cli, monkeypatch), _observe(sandbox.root / "new")
        for f in (run / "_parts").iterdir():
            f.unlink()
        (run / "_parts").rmdir()
    else:
        run, argv = sandbox.run, _observe(sandbox.runs, "--overwrite", "--seed", 3)
    (run / "_parts").symlink_to(sandbox.outside, target_is_directory=True)
    outside = snapshot(sandbox.outside)
    rc, err = cli(*argv)
    assert rc == 2
    one_line(err, "_parts", "never writes or deletes through it")
    assert snapshot(sandbox.outside) == outside and (run / "_parts").is_symlink()


def test_the_lock_file_as_a_link_is_never_followed(sandbox, cli):
    (sandbox.run / ".dodoco.lock").symlink_to(sandbox.outside / "precious.txt")
    outside = snapshot(sandbox.outside)
    for argv in (_observe(sandbox.runs, "--overwrite", "--seed", 3), ("analyze", sandbox.run)):
        rc, err = cli(*argv)
        assert rc == 2, err
        one_line(err, ".dodoco.lock is a symbolic link")
    assert snapshot(sandbox.outside) == outside


def test_no_lock_is_left_in_a_folder_dodoco_did_not_write(sandbox, cli):
    np.save(sandbox.root / "c.npy", np.ones((3, 2, 4), np.uint32))
    theirs = sandbox.root / "theirs"
    theirs.mkdir()
    (theirs / "manifest.json").write_text(json.dumps({"name": "another tool's manifest"}))
    (theirs / "notes.txt").write_text("mine")
    mine = sandbox.root / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    before = snapshot(sandbox.root)
    for folder in (theirs, mine):
        for extra in ((), ("--overwrite",)):
            rc, err = cli("import", "numpy", sandbox.root / "c.npy", "-o", folder, *extra)
            assert rc in (1, 2)
            one_line(err, str(folder))
            assert not (folder / ".dodoco.lock").exists()
    assert snapshot(sandbox.root) == before
    assert cli("import", "numpy", sandbox.root / "c.npy", "-o", sandbox.root / "fresh")[0] == 0
    assert not (sandbox.root / "fresh" / ".dodoco.lock").exists()  # removed on success too


def test_the_users_own_counts_npy_is_never_claimed(tmp_path, cli):
    folder = tmp_path / "analysis"
    folder.mkdir()
    np.save(folder / "counts.npy", np.arange(8, dtype=np.uint32))  # the user's, no manifest
    np.save(tmp_path / "c.npy", np.ones((3, 2, 4), np.uint32))
    before = snapshot(tmp_path)
    for extra in ((), ("--overwrite",)):
        rc, err = cli("import", "numpy", tmp_path / "c.npy", "-o", folder, *extra)
        assert rc == 2
        one_line(err, "holds no DODOCO run (counts.npy)")
    assert snapshot(tmp_path) == before


def test_overwrite_removes_only_the_files_the_manifest_lists(tmp_path, cli):
    np.save(tmp_path / "a.npy", np.ones((3, 2, 4), np.uint32))
    np.save(tmp_path / "b.npy", np.ones((5, 2, 4), np.uint32))
    run = tmp_path / "run"
    assert cli("import", "numpy", tmp_path / "a.npy", "-o", run)[0] == 0
    np.save(run / "tokens.npy", np.zeros(3, np.uint8))  # a name DODOCO uses, but this run never wrote it
    before = snapshot(tmp_path)
    rc, err = cli("import", "numpy", tmp_path / "b.npy", "-o", run, "--overwrite")
    assert rc == 2
    one_line(err, "also holds tokens.npy", "never removes")
    assert snapshot(tmp_path) == before
    (run / "tokens.npy").unlink()
    assert cli("import", "numpy", tmp_path / "b.npy", "-o", run, "--overwrite")[0] == 0


def test_a_run_directory_that_is_a_link_is_refused(sandbox, cli):
    np.save(sandbox.root / "c.npy", np.ones((3, 2, 4), np.uint32))
    (sandbox.root / "link").symlink_to(sandbox.outside, target_is_directory=True)
    outside = snapshot(sandbox.outside)
    rc, err = cli("import", "numpy", sandbox.root / "c.npy", "-o", sandbox.root / "link", "--overwrite")
    assert rc == 2
    one_line(err, "is a symbolic link", "give the folder it points to")
    assert snapshot(sandbox.outside) == outside and set(os.listdir(sandbox.outside)) == set(outside)


@pytest.fixture
def fifo(tmp_path):
    f = tmp_path / "counts.npy"
    os.mkfifo(f)
    return f


def test_special_files_never_hang_the_cli(tmp_path, fifo, cli_child):
    folder = tmp_path / "inputs"
    folder.mkdir()
    os.mkfifo(folder / "dump.npy")
    cases = [
        (("import", "numpy", "/dev/zero", "-o", tmp_path / "r"), "/dev/zero is a character device"),
        (("import", "numpy", fifo, "-o", tmp_path / "r"), "FIFO"),
        (("import", "numpy", folder, "-o", tmp_path / "r"), "FIFO"),
        (("analyze", tmp_path, "--config", fifo), "FIFO"),
        (("recommend", "--hardware", "h100", "--ep", "4", "--replay", "/dev/zero"), "character device"),
        (("validate", fifo), "FIFO"),
    ]
    for argv, needle in cases:
        p = cli_child(*argv)
        assert p.returncode == 2, (argv, p.stderr)
        one_line(p.stderr, needle)
    assert not (tmp_path / "r").exists()


def test_special_files_never_hang_the_api(tmp_path, fifo):
    from dodoco.errors import DodocoError
    from dodoco.ingest import ImportConfig, import_dump

    folder = tmp_path / "inputs"
    folder.mkdir()
    np.save(folder / "ok.npy", np.ones((3, 2, 4), np.uint32))
    os.mkfifo(folder / "dump.npy")
    for paths in (("/dev/zero",), (str(fifo),), (str(folder),)):
        with pytest.raises(DodocoError, match="not a regular file"):
            import_dump(ImportConfig(format="numpy", paths=paths, out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_a_zero_stride_tensor_view_is_refused_at_once(tmp_path, cli):
    """One number repeated 10^12 times by a zero stride: refused before the view is made (the fast
    reader) or converted (bfloat16 goes through torch.load), in milliseconds."""
    import torch

    torch.save(torch.zeros(1, dtype=torch.int32).expand(10**12), tmp_path / "view.pt")
    torch.save({"counts": torch.zeros(1, 1, dtype=torch.bfloat16).expand(10**6, 10**6)}, tmp_path / "bf16.pt")
    for f in ("view.pt", "bf16.pt"):
        rc, err = cli("import", "numpy", tmp_path / f, "-o", tmp_path / "r")
        assert rc == 2, err
        one_line(err, f, "more than half of this machine's memory")


FLAGS = {  # argv, needles: every size flag and seed checked before anything is allocated or loaded
    "num-experts-1e12": (("import", "numpy", "{c}", "-o", "{tmp}/r", "--num-experts", 10**12), ["--num-experts"]),
    "top-k-huge": (("import", "numpy", "{c}", "-o", "{tmp}/r", "--top-k", 10**9), ["--top-k"]),
    "sequences-1e11": (
        (*OBSERVE, "--seq-len", 32, "--sequences", 10**11, "--out", "{tmp}/o"),
        ["--sequences", "memory"],
    ),
    "seq-len-huge": ((*OBSERVE, "--seq-len", 10**12, "--sequences", 8, "--out", "{tmp}/o"), ["--seq-len"]),
    "observe-seed-negative": ((*OBSERVE, *TINY, "--seed", -1, "--out", "{tmp}/o"), ["--seed -1"]),
    "analyze-seed-negative": (("analyze", "{runs}", "--seed", -1), ["--seed -1"]),
    "seed-beyond-int64": (("analyze", "{runs}", "--seed", 2**70), ["--seed", "2**63"]),
    "device-bogus": (
        (
            "observe",
            "--model",
            "tiny:qwen3_moe",
            "--conditions",
            "prose",
            *TINY,
            "--device",
            "bogus",
            "--out",
            "{tmp}/o",
        ),
        ["--device 'bogus'"],
    ),
    "ep-huge": (("analyze", "{runs}", "--ep", 10**9), ["--ep"]),
    "threshold-nan": (("findings", "{runs}", "--threshold", "nan"), ["--threshold nan"]),
    "recommend-run-binary": (
        ("recommend", "--hardware", "h100", "--ep", "4", "--run", "{tmp}/random.bin"),
        ["random.bin"],
    ),
    "argparse-not-an-int": (("analyze", "{runs}", "--ep", "four"), ["--ep"]),
    "argparse-unknown-flag": (("analyze", "{runs}", "--bogus"), ["--bogus"]),
}


@pytest.mark.parametrize("case", sorted(FLAGS))
def test_a_bad_flag_is_one_line_before_anything_runs(case, sandbox, cli3):
    np.save(sandbox.root / "c.npy", np.ones((3, 2, 4), np.uint32))
    (sandbox.root / "random.bin").write_bytes(os.urandom(512))
    argv, needles = FLAGS[case]
    before = snapshot(sandbox.root)
    rc, out, err = cli3(*[str(a).format(c=sandbox.root / "c.npy", tmp=sandbox.root, runs=sandbox.runs) for a in argv])
    assert rc == 2, err
    one_line(err, *needles)
    assert not out.strip() and snapshot(sandbox.root) == before


def test_a_binary_replay_result_is_one_line_naming_it(tmp_path, cli):
    (tmp_path / "random.json").write_bytes(b"\xff\xfe\x00" + os.urandom(300))
    rc, err = cli("recommend", "--hardware", "h100", "--ep", "4", "--replay", tmp_path / "random.json")
    assert rc == 1
    one_line(err, "random.json", "UTF-8")


@pytest.mark.parametrize("fault", ["ENOSPC", "EROFS", "EACCES"])
def test_environment_faults_are_one_line_naming_the_path(fault, tmp_path, cli, monkeypatch):
    """A full disk while importing, a read-only folder while analyze writes metrics.parquet, no
    permission for the lock: exit 1, one line with the path and the fix; no temp file is left."""
    from dodoco.store import atomic, lock

    np.save(tmp_path / "a.npy", np.ones((3, 2, 4), np.uint32))
    np.save(tmp_path / "b.npy", np.ones((5, 2, 4), np.uint32))
    run = tmp_path / "run"
    assert cli("import", "numpy", tmp_path / "a.npy", "-o", run)[0] == 0
    before = snapshot(tmp_path)
    code = getattr(errno, fault)
    if fault == "ENOSPC":

        def full(fd):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(atomic.os, "fsync", full)
        needles = ["No space left", "disk is full", str(run)]
    elif fault == "EROFS":

        def readonly(*a, **k):
            raise OSError(code, os.strerror(code), str(k.get("dir") or a))

        monkeypatch.setattr(atomic.tempfile, "mkstemp", readonly)
        needles = ["read-only", str(run)]
    else:

        def denied(path):
            raise PermissionError(code, os.strerror(code), str(path / ".dodoco.lock"))

        monkeypatch.setattr(lock, "_open_lock", denied)
        needles = ["permission denied", ".dodoco.lock"]
    argv = ("analyze", run) if fault == "EROFS" else ("import", "numpy", tmp_path / "b.npy", "-o", run, "--overwrite")
    rc, err = cli(*argv)
    assert rc == 1
    one_line(err, *needles)
    monkeypatch.undo()
    after = snapshot(tmp_path)
    assert not [k for k in after if k.endswith(".tmp")]
    if fault != "ENOSPC":  # refused before anything was removed (a full disk stops --overwrite midway)
        assert after == before


@pytest.mark.parametrize("error", [MemoryError, RecursionError])
def test_memory_and_recursion_errors_are_one_line(error, sandbox, cli, monkeypatch):
    from dodoco import analysis

    def boom(*a, **k):
        raise error()

    monkeypatch.setattr(analysis, "metrics_table", boom)
    rc, err = cli("analyze", sandbox.run)
    assert rc == 1
    one_line(err, "out of memory" if error is MemoryError else "nested too deeply")


def test_file_names_that_are_not_utf8(sandbox, cli3):
    odd = sandbox.root / os.fsdecode(b"runs-\xff\xfe")
    os.rename(sandbox.runs, odd)
    rc, out, err = cli3("validate", odd)
    assert rc == 0 and out.count(": ok") == 2 and ("\\udcff" in out or "\\xff" in out), (out, err)
    np.save(sandbox.root / os.fsdecode(b"c-\xfe.npy"), np.ones((3, 2, 4), np.uint32))
    rc, out, err = cli3(
        "import",
        "numpy",
        sandbox.root / os.fsdecode(b"c-\xfe.npy"),
        "-o",
        sandbox.root / os.fsdecode(b"r-\xfe"),
        "--json",
        "-",
    )
    assert rc == 0, err
    rc, out, err = cli3("import", "numpy", sandbox.root / os.fsdecode(b"missing-\xfe.npy"), "-o", sandbox.root / "r2")
    assert rc == 2
    one_line(err, "missing-")


def test_debug_shows_the_traceback_before_or_after_the_command(sandbox, cli3):
    (sandbox.run / "manifest.json").write_text("{")
    for argv in (("--debug", "analyze", sandbox.run), ("analyze", sandbox.run, "--debug")):
        rc, _, err = cli3(*argv)
        assert rc == 1 and "Traceback" in err and err.splitlines()[-1].startswith("error: ")
    rc, _, err = cli3("analyze", sandbox.run)
    assert rc == 1 and "Traceback" not in err
