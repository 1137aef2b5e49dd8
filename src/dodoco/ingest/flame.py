"""FLAME-MoE routing traces (CMU-FLAME/FLAME-MoE-Traces on the Hugging Face hub).

Released with the FLAME-MoE pretraining runs (arXiv 2505.20225). Layout, as the dataset card
documents it::

    flame-moe-290m/
      samples/000.parquet ...            token_id int32, one row per token
      actives/iter_5473/layer_02.parquet one file per MoE layer of one checkpoint:
                                         scores  list<float16>[6]  router softmax probabilities of
                                                                   the top-6 experts, descending
                                         indices list<int16>[6]    their routed expert ids (0-63)

Row i of every actives file is token i of the capture (aligned with the samples files); the 2
shared experts are not in the traces. Import one checkpoint: the files of one ``actives/iter_N``
folder (or that folder). The card does not say where sequences start, so the rows of the run are
cut from consecutive tokens by ``--seq-len`` (required; the remainder is dropped and noted). The
files do not state the number of routed experts E either, and the largest id seen is only a lower
bound (an expert no token of the capture chose would be lost), so E is never guessed:
``--num-experts`` is required (64 for the released FLAME-MoE models, whose card gives ids 0-63),
the manifest's notes say it came from the flag, and an id >= E is refused. Router scores are not
imported (DODOCO stores expert ids); the file names give the layer ids.

Shape legend: T tokens, L MoE layers (files), K experts per token, S rows (T // seq_len).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.ingest.base import Dump, Records, shape_error

__all__ = ["read"]

_LAYER = re.compile(r"layer_(\d+)\.parquet$")


def _layer_of(path: Path) -> int:
    m = _LAYER.search(path.name)
    if not m:
        raise DodocoError(
            f"{path} is not a FLAME-MoE actives file: give the layer_NN.parquet files "
            f"of one actives/iter_N folder (samples/ holds token ids, not routing)"
        )
    return int(m.group(1))


def _indices(path: Path) -> np.ndarray:
    """The ``indices`` column of one layer file -> int64 [T, K] (error naming the file otherwise)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dodoco.ingest.sniff import check_parquet

    check_parquet(path)
    try:
        col = pq.read_table(path, columns=["indices"]).column("indices").combine_chunks()
    except (OSError, pa.ArrowInvalid) as exc:
        raise DodocoError(f"{path} is not a readable Parquet file ({exc})") from None
    except KeyError:
        raise DodocoError(f"{path} has no 'indices' column: not a FLAME-MoE actives file") from None
    if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise DodocoError(f"{path}: 'indices' is {col.type}, expected a list of expert ids per token")
    lengths = np.asarray(col.value_lengths().fill_null(0))
    if lengths.size and (lengths.min() != lengths.max() or col.null_count):
        row = int(np.argmax(lengths != lengths[0])) if lengths.min() != lengths.max() else 0
        raise DodocoError(
            f"{path}: token {row} has {lengths[row]} expert ids, token 0 has "
            f"{lengths[0]}; every token must list the same top-k"
        )
    K = int(lengths[0]) if lengths.size else 0
    return np.asarray(col.flatten(), dtype=np.int64).reshape(-1, max(K, 1))


def read(paths, opts) -> Dump:
    """Read the layer files of one FLAME-MoE checkpoint into a token-granularity Dump (opts: the
    import options; ``opts.seq_len`` cuts the rows)."""
    files = sorted((Path(p) for p in paths), key=_layer_of)
    layers = [_layer_of(p) for p in files]
    if len(set(layers)) != len(layers):
        raise DodocoError(f"layer ids {layers} repeat: give the files of one actives/iter_N folder")
    seq_len = int(getattr(opts, "seq_len", 0) or 0)
    if seq_len < 1:
        raise DodocoError(
            "FLAME-MoE traces do not mark sequence boundaries: pass --seq-len (tokens "
            "per row of the run, e.g. the model's training sequence length)"
        )
    ids = [_indices(p) for p in files]
    for p, x in zip(files[1:], ids[1:]):
        if x.shape != ids[0].shape:
            raise shape_error("tokens x top-k", str(files[0]), ids[0].shape, str(p), x.shape)
    T, K = ids[0].shape
    top = max(int(x.max(initial=-1)) for x in ids)
    E = getattr(opts, "num_experts", None)
    if not E:
        raise DodocoError(
            f"FLAME-MoE traces do not state the number of routed experts E (the largest id in "
            f"these files is {top}, so E >= {top + 1}): pass --num-experts E (64 for the released "
            "FLAME-MoE models)"
        )
    S = T // seq_len
    if S == 0:
        raise DodocoError(f"{files[0]} holds {T} tokens, fewer than one row of --seq-len {seq_len}")
    topk = np.stack(ids, axis=1)[: S * seq_len].reshape(S, seq_len, len(files), K)
    iteration = re.search(r"iter_(\d+)", str(files[0].parent))
    notes = [
        "router scores not imported (DODOCO stores expert ids)",
        f"E={E} from --num-experts (FLAME-MoE traces do not state it; the largest id seen is {top})",
    ]
    if T % seq_len:
        notes.append(f"last {T % seq_len} tokens dropped (not a full row of {seq_len})")
    rec = Records(str(files[0].parent), "", np.arange(S), 0, tokens=list(topk))
    return Dump(
        "flame",
        "flame-moe",
        "router-trace",
        "token",
        [rec],
        num_experts=int(E),
        top_k=K,
        layer_ids=layers,
        rows=f"{seq_len} consecutive tokens of the capture",
        notes=notes,
        extra={"iteration": int(iteration.group(1)) if iteration else None, "tokens_in_files": int(T)},
    )
