"""Each bad input named in the issue gets a one-line error that names the value and the fix."""

import json

import numpy as np
import pytest
import torch

from dodoco.errors import DodocoError
from dodoco.ingest import ImportConfig, import_dump


def _err(tmp_path, fmt, paths, **kw) -> str:
    with pytest.raises(DodocoError) as info:
        import_dump(
            ImportConfig.from_dict(dict(format=fmt, paths=[str(p) for p in paths], out=str(tmp_path / "run"), **kw))
        )
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_unknown_format_suggests_the_closest(tmp_path, dumps):
    msg = _err(tmp_path, "sglng", dumps["sglang_stat"]["files"])
    assert "unknown format 'sglng'" in msg and "did you mean 'sglang'" in msg


@pytest.mark.parametrize(
    "fmt,name,found,fits",
    [
        ("vllm", "sglang_stat", "SGLang expert-distribution stat dump", "sglang"),
        ("sglang", "vllm_window", "vLLM EPLB expert-load dump", "vllm"),
        ("sglang", "sglang_per_pass_wrong", None, None),
        ("megatron", "table_csv", "csv table", "table"),
        ("table", "megatron_trace", "Megatron router trace", "megatron"),
        ("megatron-tpe", "megatron_trace", "Megatron router trace", "megatron"),
        ("numpy", "vllm_window", "vLLM EPLB expert-load dump", "vllm"),
    ],
)
def test_file_of_another_format_names_what_was_found(tmp_path, dumps, fmt, name, found, fits):
    if name == "sglang_per_pass_wrong":  # a torch file with unrelated keys
        path = tmp_path / "weights.pt"
        torch.save({"weight": torch.zeros(2, 2)}, path)
        msg = _err(tmp_path, fmt, [path])
        assert "not an SGLang" in msg and "keys ['weight']" in msg
        return
    msg = _err(tmp_path, fmt, dumps[name]["files"][:1])
    assert "found a" in msg and found in msg.split("found ", 1)[1]
    assert f"dodoco import {fits}" in msg


def test_inconsistent_shapes_across_ranks_name_both(tmp_path, dumps):
    files = dumps["sglang_per_pass"]["files"]
    d = torch.load(files[1], weights_only=True)
    for r in d["records"]:
        r["global_physical_count"] = r["global_physical_count"][:5]  # 5 layers instead of 6
    d["last_physical_to_logical_map"] = d["last_physical_to_logical_map"][:5]
    bad = tmp_path / "rank1.pt"
    torch.save(d, bad)
    msg = _err(tmp_path, "sglang", [files[0], bad])
    assert "inconsistent" in msg and "[6, 20]" in msg and "[5, 20]" in msg
    assert str(files[0]) in msg and str(bad) in msg


def test_inconsistent_shapes_across_files_of_arrays(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.ones((3, 2, 8), dtype=np.int64))
    np.save(b, np.ones((3, 2, 6), dtype=np.int64))
    msg = _err(tmp_path, "numpy", [a, b])
    assert "[2, 8]" in msg and "[2, 6]" in msg


def test_megatron_token_counts_differ_across_layers(tmp_path):
    lines = [
        {
            "step": 0,
            "stage": "pre_dispatch",
            "block": "decoder",
            "layer": l,
            "rank": 0,
            "num_tokens": n,
            "topk": 2,
            "top_indices": [[0, 1]] * n,
        }
        for l, n in ((0, 3), (1, 2))
    ]
    path = tmp_path / "router_trace_rank0.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    msg = _err(tmp_path, "megatron", [path])
    assert "[3, 2]" in msg and "[2, 2]" in msg


def test_negative_count_names_the_first_offending_index(tmp_path):
    a = np.ones((4, 3, 8), dtype=np.int32)
    a[2, 1, 5] = -7
    a[3, 0, 0] = -1
    path = tmp_path / "c.npy"
    np.save(path, a)
    msg = _err(tmp_path, "numpy", [path])
    assert "negative count -7" in msg and "step 2" in msg and "layer 1" in msg and "expert 5" in msg


def test_negative_count_in_sglang_per_pass(tmp_path, dumps):
    files = dumps["sglang_per_pass"]["files"]
    d = torch.load(files[0], weights_only=True)
    d["records"][3]["global_physical_count"][4, 7] = -2
    bad = tmp_path / "neg.pt"
    torch.save(d, bad)
    msg = _err(tmp_path, "sglang", [bad] + files[1:])
    fp = d["records"][3]["forward_pass_id"]
    assert "negative count -2" in msg and f"forward pass {fp}" in msg and "layer 4" in msg and "expert 7" in msg


def test_non_integer_count_names_the_first_offending_index(tmp_path):
    a = np.ones((2, 8), dtype=np.float64)
    a[1, 3] = 2.5
    path = tmp_path / "w.npy"
    np.save(path, a)
    msg = _err(tmp_path, "numpy", [path])
    assert "non-integer count 2.5" in msg and "layer 1" in msg and "expert 3" in msg


def test_integral_floats_are_accepted(tmp_path, run_of):
    path = tmp_path / "f.npy"
    np.save(path, np.array([[1.0, 2.0], [3.0, 0.0]]))
    _, run = run_of("numpy", [path])
    np.testing.assert_array_equal(run.counts[0], [[1, 2], [3, 0]])


def test_non_integer_count_in_a_table_names_the_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("layer,expert,count\n0,0,3\n0,1,1.5\n")
    msg = _err(tmp_path, "table", [path])
    assert "non-integer count 1.5" in msg and "row 1" in msg


def test_table_missing_a_column_says_which(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("layer,expert,counts\n0,0,3\n")
    msg = _err(tmp_path, "table", [path])
    assert "no 'count' column" in msg and "did you mean 'counts'" in msg


def test_map_that_does_not_cover_every_expert(tmp_path, dumps):
    files = dumps["sglang_per_pass"]["files"]
    m = dumps["sglang_per_pass"]["map"].copy()
    lost = int(m[3, 0])
    m[3][m[3] == lost] = (lost + 1) % 16  # logical expert `lost` has no replica in layer 3 any more
    bad = []
    for f in files:
        d = torch.load(f, weights_only=True)
        d["last_physical_to_logical_map"] = torch.from_numpy(m)
        bad.append(tmp_path / f.name)
        torch.save(d, bad[-1])
    msg = _err(tmp_path, "sglang", bad, num_experts=16)
    assert "does not cover every expert" in msg and "layer 3" in msg and f"[{lost}]" in msg


def test_map_entry_beyond_num_experts(tmp_path, dumps):
    msg = _err(tmp_path, "sglang", dumps["sglang_per_pass"]["files"], num_experts=12)
    assert "outside 0..11" in msg and "--num-experts" in msg


def test_same_rank_and_pass_twice_is_refused(tmp_path, dumps):
    f = dumps["sglang_per_pass"]["files"][0]
    msg = _err(tmp_path, "sglang", [f, f])
    assert "appears twice" in msg


def test_layer_ids_of_the_wrong_length(tmp_path, dumps):
    msg = _err(tmp_path, "vllm", dumps["vllm_window"]["files"], layer_ids=[1, 2])
    assert "--layer-ids lists 2 layers" in msg and "has 3 layers" in msg


def test_all_zero_dump_is_refused(tmp_path):
    path = tmp_path / "z.npy"
    np.save(path, np.zeros((2, 3, 4), dtype=np.int64))
    assert "zero routed tokens" in _err(tmp_path, "numpy", [path])


def test_missing_input_file(tmp_path):
    assert "does not exist" in _err(tmp_path, "numpy", [tmp_path / "nope.npy"])


def test_cli_prints_one_line_and_exits_2(tmp_path, dumps, capsys):
    from dodoco.cli import main

    rc = main(["import", "vllm", str(dumps["sglang_stat"]["files"][0]), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and "dodoco import sglang" in err


@pytest.mark.parametrize(
    "ids,expected",
    [
        ([0, 1, 2, 255], 256),  # dense ids
        ([3, 1023], 1024),  # below FREE_IDS: never far
        ([0, 5, 2000, 2047], 2048),  # 2047 <= 2 * 2000 + 64
        ([[-1, 7], [7, 2]], 8),  # -1 = no expert, any shape
        ([], 0),
    ],
)
def test_id_bound_accepts_plausible_ids(ids, expected):
    from dodoco.ingest.base import id_bound

    assert id_bound(ids, "expert id", "f") == expected


@pytest.mark.parametrize(
    "ids,top,below",
    [
        ([0, 3, 100_000_000], 100_000_000, 3),
        ([0, 1100], 1100, 0),
        ([5000], 5000, -1),
        (list(range(70_000)), 69_999, 69_998),
    ],
)
def test_id_bound_refuses_an_id_far_beyond_the_others(ids, top, below):
    from dodoco.ingest.base import id_bound

    with pytest.raises(
        DodocoError,
        match=f"expert id {top} in f is far beyond the others \\(next largest {below}\\).*--num-experts {top + 1}",
    ):
        id_bound(ids, "expert id", "f")
