"""Issue 21, silent wrong answers: a run whose manifest or data was edited is never computed from.

Every case of the issue is reproduced on a real observed run with traces: edits of K, seq_len, kind,
sequences and E in manifest.json, and data rewritten with matching checksums (layers swapped, int64
counts, a missing sequence, a token id >= E, a changed token total). Each is tried three ways: the
seal left as it was (a hand edit), the seal removed (a manifest "from before seals"), and the seal
recomputed (a forger who knows the format): the seal catches the first, the content cross-checks
of store.check the other two. ``validate`` exits 1 naming the problem; every analysis exits 1 with
one line before it computes anything.

Which wrong implementation still passes: none of these lines holds without the check it names (a
store without the seal passes "kept" only by the content checks; one without the K rule passes
K "removed"; one without tokens-vs-counts passes "swap-layers" recomputed).
"""

import json
import os
import shutil

import numpy as np
import pytest
from faults import interrupt_after, one_line, snapshot

from dodoco.store.atomic import sha256_file
from dodoco.store.manifest import seal_of


def _manifest(run):
    return json.loads((run / "manifest.json").read_text())


def _reseal(run, d, seal):
    if seal == "removed":
        d.pop("seal", None)
    elif seal == "recomputed":
        d["seal"] = seal_of(d)
    (run / "manifest.json").write_text(json.dumps(d, indent=2))


def _edit(run, fn, seal):
    d = _manifest(run)
    fn(d)
    _reseal(run, d, seal)


def _rewrite(run, name, array, seal):
    """Replace data file ``name`` and update its manifest entry (sha256, size, shape, dtype) to match."""
    np.save(run / name, array)
    d = _manifest(run)
    d["files"][name].update(
        sha256=sha256_file(run / name),
        bytes=(run / name).stat().st_size,
        shape=list(array.shape),
        dtype=str(array.dtype),
    )
    _reseal(run, d, seal)


def _flip_kind(d):
    d["condition"]["kind"] = "mock" if d["condition"]["kind"] == "real" else "real"


EDITS = {  # field -> (edit, what the content checks name when the seal does not speak)
    "K": (lambda d: d["routing"].update(K=d["routing"]["K"] // 2), "K=4"),
    "seq_len": (lambda d: d.update(seq_len=d["seq_len"] * 2), "seq_len"),
    "seq_len-smaller": (lambda d: d.update(seq_len=d["seq_len"] // 2), "seq_len"),
    "kind": (_flip_kind, "kind"),
    "sequences": (lambda d: d.update(sequences=d["sequences"] - 1), "sequences"),
    "E": (lambda d: d["routing"].update(E=d["routing"]["E"] - 1), "shape"),
}


@pytest.mark.parametrize("seal", ["kept", "removed", "recomputed"])
@pytest.mark.parametrize("field", sorted(EDITS))
def test_an_edited_manifest_field_is_detected(field, seal, sandbox, cli3):
    edit, needle = EDITS[field]
    _edit(sandbox.run, edit, seal)
    before = snapshot(sandbox.root)
    rc, out, _ = cli3("validate", sandbox.run)
    assert rc == 1
    assert ("seal does not match" if seal == "kept" else needle) in out, out
    rc, _, err = cli3("analyze", sandbox.run)
    assert rc == 1
    one_line(err, "prose-L32", "validate")
    assert snapshot(sandbox.root) == before


def _swap_layers(run):
    c = np.load(run / "counts.npy")
    return "counts.npy", c[:, [1, 0, *range(2, c.shape[1])]]


def _int64(run):
    return "counts.npy", np.load(run / "counts.npy").astype(np.int64)


def _one_sequence_less(run):
    return "counts.npy", np.load(run / "counts.npy")[:-1]


def _token_beyond_e(run):
    t = np.load(run / "tokens.npy")
    t[5, 1, 0] = _manifest(run)["routing"]["E"]
    return "tokens.npy", t


def _seq_tokens(run):
    s = np.load(run / "seq_tokens.npy")
    s[3] += 1
    return "seq_tokens.npy", s


TAMPER = {  # case -> (new file, what the content checks name, a command that reads it)
    "swap-layers": (_swap_layers, "tokens.npy: unit 0 sends", "traces"),  # caught where traces are read
    "int64": (_int64, "dtype int64", "analyze"),
    "one-sequence-less": (_one_sequence_less, "shape [31, 4, 128]", "analyze"),
    "token-id-beyond-E": (_token_beyond_e, "expert id 128 is outside 0..127", "traces"),
    "seq-tokens": (_seq_tokens, "layer 0 of unit 3 holds 256 assignments, not its 33 tokens", "analyze"),
}


@pytest.mark.parametrize("seal", ["kept", "recomputed"])
@pytest.mark.parametrize("case", sorted(TAMPER))
def test_data_rewritten_with_matching_checksums_is_refused(case, seal, sandbox, cli3):
    make, needle, command = TAMPER[case]
    name, array = make(sandbox.run)
    _rewrite(sandbox.run, name, array, seal)
    before = snapshot(sandbox.root)
    rc, out, _ = cli3("validate", sandbox.run)
    assert rc == 1 and ("seal does not match" if seal == "kept" else needle) in out, out
    argv = (
        ["analyze", sandbox.run]
        if command == "analyze"
        else ["export", "llmservingsim", sandbox.run, "-o", sandbox.root / "gate.json"]
    )  # reads the traces
    rc, _, err = cli3(*argv)
    assert rc == 1
    one_line(err, "prose-L32")
    assert snapshot(sandbox.root) == before


def test_sound_runs_validate_and_metrics_parquet_is_listed(sandbox, cli3):
    m = _manifest(sandbox.run)
    entry = m["files"]["metrics.parquet"]
    assert entry["sha256"] == sha256_file(sandbox.run / "metrics.parquet")
    assert entry["bytes"] == (sandbox.run / "metrics.parquet").stat().st_size and m["seal"] == seal_of(m)
    rc, out, _ = cli3("validate", sandbox.runs)
    assert rc == 0 and out.count(": ok") == 2, out
    rc, _, _ = cli3("analyze", sandbox.run, "--batch", "1,2")  # rewrites metrics.parquet and relists it
    m2 = _manifest(sandbox.run)
    assert rc == 0 and m2["seal"] == seal_of(m2)
    assert m2["files"]["metrics.parquet"]["sha256"] == sha256_file(sandbox.run / "metrics.parquet")
    assert cli3("validate", sandbox.run)[0] == 0


def test_a_changed_metrics_parquet_is_caught(sandbox, cli3):
    f = sandbox.run / "metrics.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    rc, out, _ = cli3("validate", sandbox.run)
    assert rc == 1 and "metrics.parquet: checksum mismatch" in out, out


def test_shipped_runs_pass_every_check(cli3):
    """The runs shipped in the repository (written before seals, some by schema dodoco.run/1) hold
    data that agree with their manifests."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rc, out, _ = cli3("validate", root / "tests" / "fixtures" / "run-v1", root / "bench" / "data")
    assert rc == 0, out


DAMAGED = {
    "a-folder": lambda f: (f.unlink(), f.mkdir()),
    "infinity": lambda f: f.write_text(f.read_text().replace('"seq_len": 32', '"seq_len": Infinity')),
    "nan": lambda f: f.write_text(f.read_text().replace('"seq_len": 32', '"seq_len": NaN')),
    "nested-1e5": lambda f: f.write_text(
        f.read_text().replace('"details": {', '"details": {"x": ' + "[" * 100_000 + "]" * 100_000 + ", ", 1)
    ),
    "not-utf8": lambda f: f.write_bytes(b"\xff\xfe" + f.read_bytes()),
    "a-list": lambda f: f.write_text("[1, 2, 3]"),
    "a-fifo": lambda f: (f.unlink(), os.mkfifo(f)),
}


@pytest.mark.parametrize("how", sorted(DAMAGED))
def test_a_damaged_manifest_is_one_line(how, sandbox, cli3):
    DAMAGED[how](sandbox.run / "manifest.json")
    before = snapshot(sandbox.root)
    rc, out, _ = cli3("validate", sandbox.run)
    assert rc == 1 and "manifest" in out and len(out.strip().splitlines()) == 1, out
    for argv in (
        ["analyze", sandbox.run],
        ["findings", sandbox.runs],
        ["export", "neusim", sandbox.run, "-o", sandbox.root / "n.json"],
    ):
        rc, _, err = cli3(*argv)
        assert rc == 1, (argv, err)
        one_line(err, "manifest.json")
    assert snapshot(sandbox.root) == before


@pytest.mark.parametrize("what", ["a-folder", "a-fifo", "a-link-to-dev-zero"])
def test_a_data_file_that_is_not_a_regular_file_is_refused(what, sandbox, cli3):
    f = sandbox.run / "counts.npy"
    f.unlink()
    if what == "a-folder":
        f.mkdir()
    elif what == "a-fifo":
        os.mkfifo(f)
    else:
        f.symlink_to("/dev/zero")
    rc, out, _ = cli3("validate", sandbox.run)
    assert rc == 1 and "counts.npy" in out and "not a regular file" in out, out
    rc, _, err = cli3("analyze", sandbox.run)
    assert rc == 1
    one_line(err, "counts.npy", "not a regular file")


def test_resuming_on_another_device_is_refused(tmp_path, cli, monkeypatch):
    """The device kind is part of a run's identity: a run begun on a GPU never finishes on the CPU."""
    args = (
        *"observe --model tiny:qwen3_moe --conditions prose --seq-len 32 --sequences 8 --batch-size 4".split(),
        "--out",
        tmp_path,
    )
    undo = interrupt_after(monkeypatch, 2)  # the first batch is written as a part
    assert cli(*args)[0] == 130
    undo()
    stub = tmp_path / "prose-L32" / "manifest.json"
    d = json.loads(stub.read_text())
    assert d["identity"]["device"] == "cpu"
    d["identity"]["device"] = "cuda NVIDIA H100 80GB HBM3"
    stub.write_text(json.dumps(d))
    before = snapshot(tmp_path)
    rc, err = cli(*args)
    assert rc == 2
    one_line(err, "device 'cuda NVIDIA H100 80GB HBM3' vs 'cpu'")
    assert snapshot(tmp_path) == before


def test_a_copied_run_still_opens(sandbox, tmp_path, cli3):
    """Content checks are keyed by path and manifest: a copy is checked again, and passes."""
    shutil.copytree(sandbox.run, tmp_path / "copy")
    assert cli3("analyze", tmp_path / "copy", "--batch", "1")[0] == 0
