"""The streaming counts writer (dodoco.ingest.stream): same bytes and checksum as the memory-mapped
path and as np.save of an independently computed reference, whatever the chunking and write mode."""

import hashlib
import os

import numpy as np
import pytest

from dodoco.store import atomic

L, P, E = 4, 72, 64  # layer 0 dense (all zero); 8 redundant physical replicas per layer


def _dumps(folder, files=3, passes=40, seed=0, interleave=False):
    """Successive SGLang per_pass dumps of one rank -> (paths, logical counts [rows, L, E] int64)."""
    import torch

    rng = np.random.default_rng(seed)
    m = np.stack([np.r_[rng.permutation(E), rng.choice(E, P - E, replace=False)] for _ in range(L)])
    paths, truth = [], {}
    for f in range(files):
        recs = []
        ids = [f + files * p for p in range(passes)] if interleave else [f * passes + p for p in range(passes)]
        for fp in rng.permutation(ids):  # records out of pass order inside a file
            gpc = rng.integers(0, 50, size=(L, P)).astype(np.int32)
            gpc[0] = 0  # a dense layer
            if fp % 7 == 3:
                gpc[:] = 0  # an idle pass: dropped row
            logical = np.zeros((L, E), dtype=np.int64)
            for l in range(L):
                np.add.at(logical[l], m[l], gpc[l])
            truth[int(fp)] = logical
            recs.append(
                {
                    "forward_pass_id": int(fp),
                    "rank": 0,
                    "gatherer_key": "primary",
                    "global_physical_count": torch.from_numpy(gpc),
                }
            )
        path = folder / f"expert_distribution_recorder_{1716000000 + f}.0_0.pt"
        torch.save({"records": recs, "last_physical_to_logical_map": torch.from_numpy(m)}, path)
        paths.append(path)
    rows = np.stack([truth[k] for k in sorted(truth)])
    rows = rows[rows.sum(axis=(1, 2)) > 0][:, 1:]  # idle passes and the dense layer left out
    return paths, rows


def _import(paths, out, *, stream=True, monkeypatch=None):
    from dodoco.ingest import ImportConfig, assemble, import_dump

    if not stream:
        monkeypatch.setattr(assemble, "_stream_plan", lambda *a, **k: None)
    man = import_dump(ImportConfig(format="sglang", paths=tuple(map(str, paths)), out=str(out)))
    if not stream:
        monkeypatch.undo()
    return man


@pytest.mark.parametrize("chunk,direct", [(1 << 26, True), (8192, True), (8192, False), (100, True)])
def test_streamed_counts_are_byte_identical_to_the_memmap_path_and_np_save(tmp_path, monkeypatch, chunk, direct):
    from dodoco.ingest import stream
    from dodoco.store import open_run
    from dodoco.store.validate import validate_run

    (tmp_path / "d").mkdir()
    paths, truth = _dumps(tmp_path / "d")
    old = _import(paths[::-1], tmp_path / "old", stream=False, monkeypatch=monkeypatch)
    monkeypatch.setattr(stream, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(stream, "USE_DIRECT", direct)
    new = _import(paths[::-1], tmp_path / "new")  # files given in reverse: blocks reordered by pass id
    ref = tmp_path / "ref.npy"
    np.save(ref, truth.astype(np.uint32))
    data = (tmp_path / "new" / "counts.npy").read_bytes()
    assert data == ref.read_bytes() == (tmp_path / "old" / "counts.npy").read_bytes()
    assert new.files["counts.npy"].sha256 == old.files["counts.npy"].sha256 == hashlib.sha256(data).hexdigest()
    assert new.files == old.files
    assert new.routing == old.routing and new.routing.layer_ids == (1, 2, 3)
    assert new.details["dropped_rows"]["count"] == old.details["dropped_rows"]["count"] == 120 - truth.shape[0] > 0
    assert validate_run(tmp_path / "new") == []
    run = open_run(tmp_path / "new")
    np.testing.assert_array_equal(run.seq_tokens, truth.sum(axis=2).max(axis=1))
    assert not [f for f in os.listdir(tmp_path / "new") if f.endswith(".tmp")]


def test_interleaved_files_fall_back_to_the_memmap_path_with_the_same_counts(tmp_path):
    from dodoco.ingest import assemble
    from dodoco.ingest.sglang import read
    from dodoco.ingest import ImportConfig
    from dodoco.store import open_run

    (tmp_path / "d").mkdir()
    paths, truth = _dumps(tmp_path / "d", files=2, passes=9, interleave=True)
    cfg = ImportConfig(format="sglang", paths=("x",), out="y")
    recs = [r for r in read([str(p) for p in paths], cfg).records if r.n]
    rows, S = assemble._row_index(recs, False)
    assert assemble._stream_plan(recs, rows, S, L, {}) is None  # each file's passes are not one range
    _import(paths, tmp_path / "run")
    np.testing.assert_array_equal(open_run(tmp_path / "run").counts, truth)


def test_npy_header_matches_np_save(tmp_path):
    from dodoco.ingest.stream import npy_header

    for shape in [(0, 1, 1), (3, 58, 256), (100000, 61, 384)]:
        arr = np.lib.format.open_memmap(tmp_path / "b.npy", mode="w+", dtype=np.uint32, shape=shape)  # sparse
        del arr
        head = npy_header(shape)
        with open(tmp_path / "b.npy", "rb") as f:
            assert f.read(len(head)) == head and len(head) % 64 == 0
    np.save(tmp_path / "c.npy", np.ones((3, 2, 5), dtype=np.uint32))
    assert (tmp_path / "c.npy").read_bytes()[:-120] == npy_header((3, 2, 5))


def test_atomic_fd_leaves_the_old_file_and_no_temp_on_error(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_fd(target) as fd:
            atomic.write_all(fd, b"new and partial")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]
    with atomic.atomic_fd(target) as fd:
        atomic.write_all(fd, np.arange(5, dtype=np.uint32))
    assert np.frombuffer(target.read_bytes(), dtype=np.uint32).tolist() == [0, 1, 2, 3, 4]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
