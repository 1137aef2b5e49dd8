"""Plain tables and arrays of expert counts.

Table (``.csv``, ``.tsv``, ``.parquet``): one row per (layer, expert) count, columns ``layer``,
``expert``, ``count`` and optionally ``step`` and ``rank``. Rows with the same keys add up; missing
(layer, expert) pairs are zero. With ``step`` every step is one row of the run (ranks summed unless
``--split-ranks``); without it the file is one aggregate window.

Arrays (``.npy``, ``.npz`` with an array named ``counts`` or a single array, or a ``.pt`` holding a
bare tensor): ``[L, E]`` is one aggregate window, ``[steps, L, E]`` one row per step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError, did_you_mean
from dodoco.ingest.base import Dump, Records, check_counts, check_size, id_bound
from dodoco.ingest.config import ImportConfig
from dodoco.ingest.sniff import check_parquet, load_obj, wrong_format

REQUIRED = ("layer", "expert", "count")
OPTIONAL = ("step", "rank")
TABLE = "a table of expert counts (.csv, .tsv or .parquet with layer, expert, count[, step][, rank])"
ARRAY = "an array of expert counts (.npy, .npz or a tensor in .pt, shape [L, E] or [steps, L, E])"


def _read_table(path: Path):
    if not path.is_file():
        raise DodocoError(f"input file '{path}' does not exist")
    if path.suffix in (".parquet", ".pq"):
        check_parquet(path)
    try:
        if path.suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif path.suffix in (".csv", ".tsv"):
            import pyarrow.csv as pcsv

            opts = pcsv.ParseOptions(delimiter="\t" if path.suffix == ".tsv" else ",")
            table = pcsv.read_csv(path, parse_options=opts)
        else:
            table = None
        if table is not None:
            table.column_names  # noqa: B018 (decodes the header: a damaged name raises here)
            return table
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError with a readable message
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DodocoError(f"{path} cannot be read as a table ({first[:160]})") from None
    raise wrong_format(path, "table", TABLE)


def _columns(table, path: Path) -> dict[str, np.ndarray]:
    names = {n.strip().lower(): n for n in table.column_names}
    for need in REQUIRED:
        if need not in names:
            if len(set(names) & set(REQUIRED + OPTIONAL)) == 0:
                raise wrong_format(path, "table", TABLE)
            raise DodocoError(
                f"{path} has no '{need}' column ({did_you_mean('column', need, names)}): "
                "tables need layer, expert, count and optionally step, rank"
            )
    return {k: table.column(names[k]).to_numpy(zero_copy_only=False) for k in REQUIRED + OPTIONAL if k in names}


def _int_column(col: np.ndarray, name: str, path: Path) -> np.ndarray:
    def where(idx):
        return f"{path} row {idx[0]} (column '{name}')" if idx else f"{path} column '{name}'"

    if col.dtype == object:
        raise DodocoError(f"{path} column '{name}' holds text or missing values; expected integers")
    check_counts(col, where, "count" if name == "count" else f"{name} id")
    return col.astype(np.int64)


def _table_records(path: Path, cfg: ImportConfig) -> tuple[Records, bool, list[int]]:
    cols = _columns(_read_table(path), path)
    c = {k: _int_column(v, k, path) for k, v in cols.items()}
    if cfg.ranks is not None and "rank" in c:
        keep = np.isin(c["rank"], list(cfg.ranks))
        c = {k: v[keep] for k, v in c.items()}
    id_bound(c["layer"], "layer id", path, flag="")
    layers, li = np.unique(c["layer"], return_inverse=True)
    E = cfg.num_experts or id_bound(c["expert"], "expert id", path)
    if c["expert"].size and c["expert"].max() >= E:
        i = int(np.argmax(c["expert"] >= E))
        raise DodocoError(f"{path} row {i}: expert {c['expert'][i]} is outside 0..{E - 1} (--num-experts {E})")
    step = c.get("step", np.zeros_like(c["layer"]))
    rank = c.get("rank", np.zeros_like(c["layer"]))
    keys, ki = np.unique(np.stack([step, rank], axis=1), axis=0, return_inverse=True)
    check_size((keys.shape[0], layers.size, E), 8, path)
    counts = np.zeros((keys.shape[0], layers.size, E), dtype=np.int64)
    np.add.at(counts, (ki.reshape(-1), li.reshape(-1), c["expert"]), c["count"])
    window = "step" not in c
    group = str(path) if window else ""
    rec = Records(str(path), group, keys[:, 0], keys[:, 1], counts=counts, key_name="step")
    return rec, window, layers.tolist()


def read_table(paths, cfg: ImportConfig) -> Dump:
    """Read CSV/Parquet count tables (see the module docstring) into a Dump."""
    parts = [_table_records(Path(p), cfg) for p in paths]
    kinds = {w for _, w, _ in parts}
    if len(kinds) > 1:
        raise DodocoError("some tables have a 'step' column and some do not: import them separately")
    layer_sets = [tuple(ls) for _, _, ls in parts]
    if len(set(layer_sets)) > 1:
        raise DodocoError(
            f"the tables list different layers ({list(layer_sets[0])} in {paths[0]} vs "
            f"{list(next(ls for ls in layer_sets if ls != layer_sets[0]))}); "
            "give every layer in every table (zeros are fine)"
        )
    E = max(p[0].row_shape()[1] for p in parts)
    records = [_pad(r, E) for r, _, _ in parts]
    window = kinds == {True}
    return Dump(
        "table",
        "table",
        "table",
        "window" if window else "pass",
        records,
        layer_ids=list(layer_sets[0]),
        rows="aggregate window per file" if window else "one step, summed over ranks",
    )


def _pad(rec: Records, E: int) -> Records:
    if rec.counts.shape[2] < E:
        rec.counts = np.concatenate(
            [rec.counts, np.zeros(rec.counts.shape[:2] + (E - rec.counts.shape[2],), dtype=rec.counts.dtype)], axis=2
        )
    return rec


def _array(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DodocoError(f"{path} is not a readable .npy array ({str(exc)[:120] or 'empty file'})") from None
    obj = load_obj(path)
    if path.suffix == ".npz" and "counts" not in obj:
        if len(obj) != 1:
            raise DodocoError(f"{path} holds arrays {sorted(obj)}: name the counts array 'counts'")
        obj = next(iter(obj.values()))
    if isinstance(obj, dict) and "counts" in obj:
        obj = obj["counts"]
    if not isinstance(obj, np.ndarray):
        raise wrong_format(path, "numpy", ARRAY)
    return obj


def read_array(paths, cfg: ImportConfig) -> Dump:
    """Read count arrays [L, E] (a window) or [steps, L, E] (rows) into a Dump."""
    records, ndims = [], set()
    for p in map(Path, paths):
        a = _array(p)
        if a.ndim not in (2, 3):
            raise DodocoError(f"{p} has shape {list(a.shape)}; expected [layers, experts] or [steps, layers, experts]")
        if 0 in a.shape:
            raise DodocoError(f"{p} has shape {list(a.shape)}: an empty array holds nothing to import")
        ndims.add(a.ndim)
        a = a[None] if a.ndim == 2 else a
        records.append(Records(str(p), str(p), np.arange(a.shape[0]), 0, counts=a, key_name="step"))
    if len(ndims) > 1:
        raise DodocoError("the inputs mix [L, E] windows and [steps, L, E] arrays: import them separately")
    window = ndims == {2}
    L = records[0].row_shape()[0]
    return Dump(
        "numpy",
        "array",
        "array",
        "window" if window else "pass",
        records,
        layer_ids=list(range(L)),
        rows="aggregate window per file" if window else "one step (first axis)",
    )
