"""Published token-level trace formats, on fixtures written from their documentation.

FLAME-MoE-Traces (CMU-FLAME, dataset card): ``actives/iter_N/layer_NN.parquet``, one row per
token, ``scores`` list<float16>[6] (router softmax probabilities of the top-6, descending) and
``indices`` list<int16>[6] (their expert ids, 0-63); row i of every layer file is token i.
"""

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dodoco.errors import DodocoError
from dodoco.ingest import FORMATS
from dodoco.ingest.flame import read

K, E = 6, 64


def write_flame(folder, layers=(2, 3, 4), T=50, seed=0, fixed=False):
    """A FLAME-MoE capture: one layer file per MoE layer -> ids int64 [T, L, K] written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.argsort(rng.random((T, len(layers), E)), axis=-1)[..., :K]
    for j, layer in enumerate(layers):
        scores = np.sort(rng.dirichlet(np.ones(E), T)[:, :K], axis=1)[:, ::-1]
        typ = (lambda t: pa.list_(t, K)) if fixed else pa.list_
        table = pa.table(
            {
                "scores": pa.array(scores.astype(np.float16).tolist(), typ(pa.float16())),
                "indices": pa.array(ids[:, j].astype(np.int16).tolist(), typ(pa.int16())),
            }
        )
        pq.write_table(table, folder / f"layer_{layer:02d}.parquet")
    return ids


@pytest.mark.parametrize("fixed", [False, True])
def test_flame_rows_are_consecutive_tokens_and_ids_survive(tmp_path, fixed):
    folder = tmp_path / "actives" / "iter_5473"
    ids = write_flame(folder, T=50, fixed=fixed)
    dump = read(sorted(folder.iterdir()), SimpleNamespace(seq_len=16, num_experts=E))
    assert dump.granularity == "token" and dump.top_k == K and dump.layer_ids == [2, 3, 4]
    rec = dump.records[0]
    assert rec.n == 3  # 50 tokens -> 3 rows of 16, 2 tokens dropped
    got = np.concatenate(rec.tokens)
    assert np.array_equal(got, ids[:48])
    assert dump.extra["iteration"] == 5473 and dump.extra["tokens_in_files"] == 50
    assert any("last 2 tokens dropped" in n for n in dump.notes)
    assert any("scores not imported" in n for n in dump.notes)


def test_flame_layer_order_comes_from_file_names(tmp_path):
    folder = tmp_path / "iter_1"
    ids = write_flame(folder, layers=(10, 9, 2), T=8)
    dump = read(
        [folder / "layer_10.parquet", folder / "layer_02.parquet", folder / "layer_09.parquet"],
        SimpleNamespace(seq_len=8, num_experts=E),
    )
    assert dump.layer_ids == [2, 9, 10]
    assert np.array_equal(dump.records[0].tokens[0], ids[:, [2, 1, 0]])


def test_flame_registered():
    assert "flame" in FORMATS
    assert FORMATS.get("flame") is read


def test_flame_errors_name_the_fix(tmp_path):
    folder = tmp_path / "iter_2"
    write_flame(folder, layers=(2, 3), T=20)
    files = sorted(folder.iterdir())
    with pytest.raises(DodocoError, match="--seq-len"):
        read(files, SimpleNamespace(seq_len=0, num_experts=E))
    with pytest.raises(DodocoError, match="fewer than one row"):
        read(files, SimpleNamespace(seq_len=64, num_experts=E))
    pq.write_table(pa.table({"token_id": pa.array([1, 2], pa.int32())}), tmp_path / "000.parquet")
    with pytest.raises(DodocoError, match="not a FLAME-MoE actives file"):
        read([tmp_path / "000.parquet"], SimpleNamespace(seq_len=1, num_experts=E))
    other = tmp_path / "iter_3"
    write_flame(other, layers=(4,), T=30)
    with pytest.raises(DodocoError, match="inconsistent tokens x top-k"):
        read(files + [other / "layer_04.parquet"], SimpleNamespace(seq_len=4, num_experts=E))
    ragged = tmp_path / "iter_4"
    ragged.mkdir()
    pq.write_table(
        pa.table({"indices": pa.array([[1, 2, 3], [4, 5]], pa.list_(pa.int16()))}), ragged / "layer_02.parquet"
    )
    with pytest.raises(DodocoError, match="token 1 has 2 expert ids"):
        read([ragged / "layer_02.parquet"], SimpleNamespace(seq_len=1, num_experts=E))


def test_flame_never_guesses_the_number_of_experts(tmp_path):
    """E is not in the files: without --num-experts the import stops naming the largest id (a lower
    bound only); with it, E is recorded as given, noted, and an id >= E is refused."""
    from dodoco.ingest import ImportConfig, import_dump
    from dodoco.store import open_run

    folder = tmp_path / "iter_7"
    ids = write_flame(folder, layers=(2, 3), T=32)
    top = int(ids.max())
    with pytest.raises(
        DodocoError, match=rf"largest id in these files is {top}, so E >= {top + 1}\): pass --num-experts"
    ):
        read(sorted(folder.iterdir()), SimpleNamespace(seq_len=8, num_experts=None))
    cfg = dict(format="flame", paths=(str(folder),), seq_len=8)
    man = import_dump(ImportConfig(out=str(tmp_path / "run"), num_experts=96, **cfg))
    assert man.routing.E == 96 and open_run(tmp_path / "run").counts.shape == (4, 2, 96)
    assert any("E=96 from --num-experts" in n for n in man.details["notes"])
    with pytest.raises(DodocoError, match=f"expert id {top} out of range 0..{top - 1}"):
        import_dump(ImportConfig(out=str(tmp_path / "low"), num_experts=top, **cfg))
