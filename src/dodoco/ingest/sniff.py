"""Recognise what an input file is, so that a file given to the wrong importer gets an error that
names what was found and the importer that reads it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError, refuse

_SUFFIX_TABLE = (".csv", ".parquet", ".pq", ".tsv")
_SUFFIX_ARRAY = (".npy", ".npz")


def load_obj(path):
    """A ``.pt`` (tensors as numpy) or ``.json`` file's content; DodocoError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DodocoError(f"input file '{path}' does not exist")
    if path.suffix == ".json":
        from dodoco.config import allocation_limit
        from dodoco.paths import read_regular

        try:  # Python objects take several times the bytes of their JSON text
            return json.loads(read_regular(path, limit=allocation_limit() // 16))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DodocoError(f"{path} is not valid JSON ({str(exc)[:120]})") from None
        except RecursionError:
            raise DodocoError(f"{path} is nested too deeply to be a dump (corrupt JSON?)") from None
    if path.suffix == ".npz":
        return load_npz(path)
    from dodoco.ingest.torchfile import load

    return load(path)


def _npz_sizes(path) -> None:
    """Each member's array size from its .npy header, checked against memory before any is read (a
    compressed member can declare far more than the file holds)."""
    import zipfile

    from dodoco.ingest.base import check_size

    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = header(f)
                check_size(shape, dtype.itemsize, f"{path} (member {info.filename})")


def load_npz(path) -> dict:
    """The arrays of a ``.npz`` file (each member's zip CRC checked as it is read; 0-d arrays as scalars);
    DodocoError naming the file for a damaged archive, an object (pickled) array, or an array too large
    for memory."""
    import zipfile

    try:
        _npz_sizes(path)
        with np.load(path, allow_pickle=False) as z:
            return {k: (z[k].item() if z[k].ndim == 0 else z[k]) for k in z.files}
    except ValueError as exc:
        objects = f"{path} holds Python objects (an object array), not numbers: save integer count arrays"
        unread = f"{path} is not a readable .npz archive ({str(exc)[:120]})"
        raise refuse(exc, "allow_pickle", objects, unread) from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, NotImplementedError, RuntimeError, TypeError) as exc:
        raise DodocoError(
            f"{path} is not a readable .npz archive ({str(exc)[:120] or type(exc).__name__}); is it truncated?"
        ) from None


def check_parquet(path) -> None:
    """A Parquet file's uncompressed size (from its footer) checked against memory before it is read
    (a few compressed pages can declare gigabytes); unreadable footers are left to the reader."""
    import pyarrow.parquet as pq

    from dodoco.ingest.base import check_size

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # noqa: BLE001 (the reader names the damage)
        return
    check_size((sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),), 1, path)


def first_json_line(path) -> dict | None:
    """The first JSON object of a JSON Lines file, or None when it is not one."""
    try:
        with open(path, "rb") as f:
            line = f.readline(1 << 26)
        obj = json.loads(line)
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def describe_obj(obj) -> tuple[str | None, str]:
    """(format that reads it, what it is in words) for a loaded ``.pt``/``.json`` object."""
    if isinstance(obj, np.ndarray):
        return "numpy", f"a bare tensor of shape {list(obj.shape)}"
    if not isinstance(obj, dict):
        return None, f"a {type(obj).__name__}, not a dict of named arrays"
    keys = set(obj)
    if {"records", "last_physical_to_logical_map"} <= keys:
        recs = obj.get("records") or [{}]
        mode = "per_token" if "topk_ids_of_layer" in recs[0] else "per_pass"
        return "sglang", f"an SGLang {mode} expert-distribution dump"
    if "logical_count" in keys:
        return "sglang", "an SGLang expert-distribution stat dump (logical_count)"
    if keys & {"expert_load_window", "expert_load_pass"}:
        return "vllm", "a vLLM EPLB expert-load dump"
    if "physical_to_logical_map" in keys:
        return None, "an expert placement (physical_to_logical_map) without any expert counts"
    if "counts" in keys:
        return "numpy", "a dict with a 'counts' array"
    return None, f"a dict with keys {sorted(map(str, keys))[:8]}"


def describe(path) -> tuple[str | None, str]:
    """(format that reads the file, what it is in words); never raises for unreadable files."""
    path = Path(path)
    if path.suffix in _SUFFIX_TABLE:
        return "table", f"a {path.suffix.lstrip('.')} table"
    if path.suffix in _SUFFIX_ARRAY:
        return "numpy", f"a numpy {path.suffix} file"
    if path.suffix in (".jsonl", ".ndjson"):
        rec = first_json_line(path)
        if rec is None:
            return None, "a JSON Lines file whose first line is not a JSON object"
        if "top_indices" in rec:
            return "megatron", "a Megatron router trace (top_indices per step and layer)"
        if "tpe" in rec:
            return "megatron-tpe", "a Megatron tokens-per-expert log (tpe per iteration and layer)"
        return None, f"a JSON Lines file with keys {sorted(rec)[:8]}"
    try:
        return describe_obj(load_obj(path))
    except DodocoError as exc:
        return None, f"an unreadable file ({exc})"


def wrong_format(path, fmt: str, expected: str) -> DodocoError:
    """The error for a file that is not what ``fmt`` reads, naming what was found."""
    fits, found = describe(path)
    hint = (
        f"; import it with `dodoco import {fits} ...`"
        if fits and fits != fmt
        else "; see `dodoco import --help` for the formats"
    )
    return DodocoError(f"{path} is not {expected}: found {found}{hint}")
