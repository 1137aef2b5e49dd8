"""The torch-file reader, the physical -> logical map, and the row assembly against brute force."""

import numpy as np
import pytest
import torch

from dodoco.errors import DodocoError
from dodoco.ingest.base import LogicalMap, check_map
from dodoco.ingest.torchfile import Unsupported, load, load_fast, stack


def test_fast_reader_equals_torch_load(tmp_path):
    x = torch.arange(24, dtype=torch.int32).reshape(4, 6)
    obj = {
        "a": x[:, 1:4],
        "t": x.t(),
        "s": torch.tensor(7, dtype=torch.int64),
        "e": torch.zeros(0, 3),
        "nested": [{"v": torch.arange(5, dtype=torch.int16)}, 3, "txt", None, 2.5],
        "shared": x[1],
    }
    path = tmp_path / "o.pt"
    torch.save(obj, path)
    got = load_fast(path)
    np.testing.assert_array_equal(got["a"], x[:, 1:4].numpy())
    np.testing.assert_array_equal(got["t"], x.t().numpy())
    assert got["s"].shape == () and int(got["s"]) == 7
    assert got["e"].shape == (0, 3) and got["e"].dtype == np.float32
    assert got["nested"][0]["v"].dtype == np.int16 and got["nested"][1:] == [3, "txt", None, 2.5]
    np.testing.assert_array_equal(got["shared"], x[1].numpy())


def test_unsupported_dtype_falls_back_to_torch_load(tmp_path):
    path = tmp_path / "bf.pt"
    torch.save({"w": torch.ones(3, dtype=torch.bfloat16)}, path)
    with pytest.raises(Unsupported):
        load_fast(path)
    np.testing.assert_array_equal(load(path)["w"], np.ones(3, dtype=np.float32))


def test_code_in_a_pickle_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(DodocoError, match="weights_only"):
        load(path)


def test_stack_is_a_zero_copy_view_for_consecutive_records(tmp_path):
    path = tmp_path / "r.pt"
    recs = [{"c": torch.full((3, 5), i, dtype=torch.int32)} for i in range(6)]
    torch.save({"records": recs}, path)
    arrays = [r["c"] for r in load_fast(path)["records"]]
    s = stack(arrays)
    np.testing.assert_array_equal(s, np.stack([np.full((3, 5), i) for i in range(6)]))
    assert not s.flags.owndata and s.base is not None  # a view of the memory map, no copy
    mixed = stack([arrays[0], np.zeros((3, 5), np.int32)])  # not one buffer: a copy, still right
    np.testing.assert_array_equal(mixed[1], 0)


def _brute(x, m, E):
    out = np.zeros(x.shape[:-1] + (E,), dtype=np.int64)
    for l in range(m.shape[0]):
        for p in range(m.shape[1]):
            if m[l, p] >= 0:
                out[..., l, m[l, p]] += x[..., l, p]
    return out


@pytest.mark.parametrize("P", [8, 13])
def test_logical_map_matches_brute_force(P):
    rng = np.random.default_rng(P)
    E, L = 8, 4
    m = np.stack([np.r_[rng.permutation(E), rng.integers(0, E, P - E)] for _ in range(L)])
    if P > E:
        m[1, -1] = -1  # an unused slot
    lm = LogicalMap(check_map(m, E, "x"), E)
    x = rng.integers(0, 50, (5, L, P)).astype(np.uint32)
    x[:, 1, -1] = 0 if P > E else x[:, 1, -1]
    np.testing.assert_array_equal(lm(x), _brute(x, m, E))
    t = rng.integers(-1, P, (6, L, 3))
    ids = lm.ids(t)
    want = np.where(t < 0, -1, m[np.arange(L)[None, :, None], np.where(t < 0, 0, t)])
    np.testing.assert_array_equal(ids, want)


def test_identity_map_is_a_no_op():
    lm = LogicalMap(np.tile(np.arange(6), (2, 1)), 6)
    x = np.arange(24, dtype=np.uint32).reshape(2, 2, 6)
    assert lm.identity and lm(x) is x


def test_sglang_per_pass_with_several_maps_still_maps_each_file(tmp_path, dumps, run_of, fx):
    """Files whose maps differ (a rebalance between dumps) are mapped block by block."""
    truth = dumps["sglang_per_pass"]
    rng = np.random.default_rng(11)
    m2 = fx.phys_map(rng)
    files = []
    for i, f in enumerate(truth["files"]):
        d = torch.load(f, weights_only=True)
        if i == 0:  # re-express rank 0's counts in another physical layout with the same logical sums
            for r in d["records"]:
                logical = _brute(r["global_physical_count"].numpy(), truth["map"], fx.E)
                phys = np.zeros_like(r["global_physical_count"].numpy())
                first = np.array([[np.flatnonzero(m2[l] == e)[0] for e in range(fx.E)] for l in range(m2.shape[0])])
                phys[np.arange(m2.shape[0])[:, None], first] = logical
                r["global_physical_count"] = torch.from_numpy(phys)
            d["last_physical_to_logical_map"] = torch.from_numpy(m2)
        files.append(tmp_path / f.name)
        torch.save(d, files[-1])
    man, run = run_of("sglang", files)
    np.testing.assert_array_equal(np.asarray(run.counts), truth["counts"])
    assert any("maps differ" in n for n in man.details["notes"])
