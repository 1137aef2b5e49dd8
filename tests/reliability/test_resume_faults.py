"""Interrupted observes: resume only the same run, recompute damaged parts, prove completeness.

Wrong implementations these catch (each shown by breaking the code, see the closing note of issue 13):
resume keyed on the batch index instead of the first sequence (a 24-sequence run finished with 20
rows), parts merged out of order, an identity without the weights or the text (swapped files between
an interrupt and the rerun finished a "complete" run of mixed rows).
"""

import json
import shutil

import numpy as np
import pytest
from faults import interrupt_after, one_line, snapshot

from dodoco.errors import DodocoError
from dodoco.observe import runner
from dodoco.store import open_run

ARGS = ("--seq-len", 32, "--sequences", 24, "--batch-size", 4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same run observed without interruption: counts [24, L, E]."""
    out = tmp_path_factory.mktemp("ref")
    (path,) = runner.observe(
        "tiny:qwen3_moe", ["prose"], seq_len=32, sequences=24, batch_size=4, out=out, quiet=True, invariance=False
    )
    return np.array(open_run(path).counts)


def test_resume_after_interrupt_equals_an_uninterrupted_run(tmp_path, cli, monkeypatch, reference):
    undo = interrupt_after(monkeypatch, 5)  # batches 0..3 written (sequences 0..15), the 5th interrupted
    assert cli("observe", "--model", "tiny:qwen3_moe", "--conditions", "prose", *ARGS, "--out", tmp_path)[0] == 130
    assert len(list((tmp_path / "prose-L32" / "_parts").glob("part-*"))) == 4
    undo()
    assert cli("observe", "--model", "tiny:qwen3_moe", "--conditions", "prose", *ARGS, "--out", tmp_path)[0] == 0
    run = open_run(tmp_path / "prose-L32")
    assert run.counts.shape[0] == 24
    np.testing.assert_array_equal(run.counts, reference)


def test_damaged_part_is_discarded_recomputed_and_noted(tmp_path, cli, monkeypatch, reference):
    undo = interrupt_after(monkeypatch, 4)
    cli("observe", "--model", "tiny:qwen3_moe", "--conditions", "prose", *ARGS, "--out", tmp_path)
    undo()
    parts = sorted((tmp_path / "prose-L32" / "_parts").glob("part-*"))
    data = bytearray(parts[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    parts[2].write_bytes(parts[2].read_bytes()[:100])  # truncated
    rc, err = cli("observe", "--model", "tiny:qwen3_moe", "--conditions", "prose", *ARGS, "--out", tmp_path)
    assert rc == 0 and "Traceback" not in err
    notes = [line for line in err.splitlines() if line.startswith("note: part-")]
    assert len(notes) == 2 and all("is damaged" in n and "computed again" in n for n in notes)
    np.testing.assert_array_equal(open_run(tmp_path / "prose-L32").counts, reference)


@pytest.mark.parametrize("change", ["text", "weights"])
def test_resume_after_the_data_changed_is_refused(change, tmp_path, cli, monkeypatch, checkpoints):
    model, text = tmp_path / "model", tmp_path / "corpus.txt"
    shutil.copytree(checkpoints["moe"], model)
    words = [f"alpha{i} beta gamma{i % 7} delta" for i in range(800)]
    text.write_text(" ".join(words))
    args = ("observe", "--model", model, "--conditions", f"file:{text}", *ARGS, "--out", tmp_path / "runs")
    undo = interrupt_after(monkeypatch, 3)
    assert cli(*args)[0] == 130
    undo()
    if change == "text":
        text.write_text(" ".join(reversed(words)))
    else:
        from dodoco.models.tiny import build_tiny

        build_tiny("qwen3_moe", 8192, seed=1).save_pretrained(model)  # retrained weights, same file names
    before = snapshot(tmp_path / "runs")
    rc, err = cli(*args)
    field = "data" if change == "text" else "weights"
    assert rc == 2 and one_line(err, "holds an unfinished different run", f"{field} 'sha256:")
    assert snapshot(tmp_path / "runs") == before


def test_finalize_refuses_parts_that_do_not_tile_every_sequence(tmp_path):
    from dodoco.store.manifest import Origin
    from dodoco.store.writer import RunWriter, _check_coverage

    w = RunWriter(tmp_path / "r", {"x": 1}, origin=Origin.OBSERVED)
    for start in (0, 4, 12):  # sequences 8..11 never written
        w.write_part(start, np.ones((4, 2, 3), np.uint32), np.full(4, 2))
    with pytest.raises(DodocoError, match=r"incomplete: sequences 8\.\.11 are missing; rerun the same command"):
        w.finalize(_manifest(16))
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["status"] == "running"
    assert not (tmp_path / "r" / "counts.npy").exists()
    w.close()
    for parts, S, what in (
        ([(0, 4), (2, 4)], 6, r"sequences 2\.\.3 are in two parts"),
        ([(0, 4), (4, 4)], 6, r"8 rows for 6 sequences"),
        ([(0, 4)], 6, r"sequences 4\.\.5 are missing"),
    ):
        with pytest.raises(DodocoError, match=what):
            _check_coverage(tmp_path, parts, S)


def _manifest(S: int):
    from dodoco.store import manifest as m

    return m.Manifest(
        status=m.Status.RUNNING,
        origin=m.Origin.OBSERVED,
        identity={},
        model=m.ModelInfo(id="m"),
        routing=m.Routing(E=3, K=1, L=2, layer_ids=(0, 1)),
        condition=m.ConditionInfo(name="prose", kind=m.ConditionKind.REAL),
        seq_len=2,
        sequences=S,
        granularity=m.Granularity.SEQUENCE,
    )
