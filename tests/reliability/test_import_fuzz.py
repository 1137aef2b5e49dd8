"""Property: a damaged dump either imports to the very same counts or fails with one line.

Random byte flips and truncations of valid engine dumps (scripts/make_ingest_fixtures.py) must never
raise anything but a one-line DodocoError (the CLI turns anything else into a traceback). For the
formats that carry checksums (torch ``.pt`` zips: every member's CRC-32 is verified before its bytes
are used), a damaged file that still imports must give identical counts. Text and ``.npy`` formats
(CSV, JSON, JSON Lines, Parquet without page checksums, bare ``.npy``) have no checksum: a flipped
digit is a different valid number there, so only the first half of the property can hold.

Which wrong implementation fails it: the .pt reader without the CRC check (2 of 40 fuzzed SGLang
files imported with wrong counts, 4 of 40 tried to allocate up to 1.5 TiB), `ints` without the
ragged-list guard, a table reader sizing E by the largest id (96 TiB for one flipped Parquet bit).
"""

import itertools
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dodoco.errors import DodocoError
from dodoco.ingest import ImportConfig, import_dump
from dodoco.store import open_run

FORMATS = {
    "sglang_stat": "sglang",
    "sglang_init_json": "sglang",
    "sglang_per_pass": "sglang",
    "sglang_per_token": "sglang",
    "vllm_window": "vllm",
    "megatron_trace": "megatron",
    "megatron_tpe": "megatron-tpe",
    "table_csv": "table",
    "table_parquet": "table",
    "numpy_arrays": "numpy",
}
CHECKSUMMED = {"sglang_stat", "sglang_per_pass", "sglang_per_token", "vllm_window"}
OPTIONS = {"megatron_tpe": {"ep_size": 2}}
_ids = itertools.count()

damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 0.999)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 0.999), st.integers(1, 255)), min_size=1, max_size=3)),
)


def _import(name, paths, out):
    cfg = ImportConfig(format=FORMATS[name], paths=tuple(map(str, paths)), out=str(out), **OPTIONS.get(name, {}))
    import_dump(cfg)
    run = open_run(out)
    return np.array(run.counts), np.array(run.seq_tokens)


def _damaged(data: bytes, how) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return data[: int(arg * len(data))]
    out = bytearray(data)
    for where, mask in arg:
        out[int(where * len(out))] ^= mask
    return bytes(out)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_damaged_dump_imports_identically_or_fails_in_one_line(name, engine_dumps, tmp_path):
    files = engine_dumps[name]["files"]
    reference = _import(name, files, tmp_path / "reference")

    @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(which=st.integers(0, len(files) - 1), how=damage)
    def check(which, how):
        folder = tmp_path / f"case{next(_ids)}"
        folder.mkdir()
        paths = []
        for i, f in enumerate(files):
            data = f.read_bytes()
            paths.append(folder / f.name)
            paths[-1].write_bytes(_damaged(data, how) if i == which else data)
        try:
            counts, seq_tokens = _import(name, paths, folder / "run")
        except DodocoError as exc:
            assert "\n" not in str(exc) and str(exc)
            return
        finally:
            shutil.rmtree(folder / "run", ignore_errors=True)
        if name in CHECKSUMMED:
            np.testing.assert_array_equal(counts, reference[0])
            np.testing.assert_array_equal(seq_tokens, reference[1])

    check()
