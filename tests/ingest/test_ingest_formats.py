"""Every importer reproduces the fixture's own numbers, in the engine's exact file format."""

import hashlib
import json

import numpy as np
import pytest

CASES = [  # fixture writer, format, expected granularity
    ("sglang_stat", "sglang", "pass"),
    ("sglang_init_json", "sglang", "window"),
    ("sglang_per_pass", "sglang", "pass"),
    ("sglang_per_token", "sglang", "token"),
    ("vllm_window", "vllm", "pass"),
    ("megatron_trace", "megatron", "token"),
    ("megatron_tpe", "megatron-tpe", "pass"),
    ("table_csv", "table", "pass"),
    ("table_parquet", "table", "window"),
    ("numpy_arrays", "numpy", "pass"),
]


@pytest.mark.parametrize("name,fmt,gran", CASES, ids=[c[0] for c in CASES])
def test_counts_layers_and_manifest_match_the_fixture(dumps, run_of, name, fmt, gran):
    truth = dumps[name]
    man, run = run_of(fmt, truth["files"], model_id="tiny/moe")
    np.testing.assert_array_equal(np.asarray(run.counts), truth["counts"])
    assert run.counts.dtype == np.uint32
    assert run.granularity == gran == man.granularity.value
    assert man.origin.value == "imported" and man.model.id == "tiny/moe"
    assert list(man.routing.layer_ids) == truth["layer_ids"]
    assert man.routing.E == truth["E"] and man.routing.L == len(truth["layer_ids"])
    assert [x["layer"] for x in man.details["excluded_layers"]] == truth["excluded"]
    assert man.details["source"]["format"] == fmt
    for f, src in zip(sorted(truth["files"]), sorted(man.details["source"]["files"], key=lambda s: s["path"])):
        assert src["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert man.sequences == truth["counts"].shape[0] == run.seq_tokens.shape[0]


@pytest.mark.parametrize("name,fmt", [("sglang_per_token", "sglang"), ("megatron_trace", "megatron")])
def test_token_traces_match_and_count_to_counts(dumps, run_of, name, fmt):
    truth = dumps[name]
    man, run = run_of(fmt, truth["files"])
    topk, offsets = run.tokens()
    np.testing.assert_array_equal(topk, truth["tokens"])
    assert topk.dtype == np.uint8 and man.routing.K == truth["K"] == topk.shape[2]
    assert offsets[0] == 0 and offsets[-1] == topk.shape[0]
    np.testing.assert_array_equal(np.diff(offsets), run.seq_tokens)
    for s in range(run.counts.shape[0]):  # counts are exactly the bincount of each row's tokens
        t = topk[offsets[s] : offsets[s + 1]]
        for l in range(t.shape[1]):
            np.testing.assert_array_equal(run.counts[s, l], np.bincount(t[:, l].ravel(), minlength=truth["E"]))


def test_sglang_stat_drops_unfilled_buffer_rows_and_reports_them(dumps, run_of):
    man, run = run_of("sglang", dumps["sglang_stat"]["files"], top_k=4)
    assert man.details["dropped_rows"]["count"] == 3  # buffer of 10 rows, 7 passes recorded
    assert man.routing.K == 4
    # seq_tokens = assignments of the busiest layer / K; every token picks K experts in every layer
    np.testing.assert_array_equal(run.seq_tokens, dumps["sglang_stat"]["counts"].sum(axis=2).max(axis=1) // 4)


def test_split_ranks_gives_one_row_per_rank_that_sums_back(dumps, run_of, fx):
    truth = dumps["sglang_per_pass"]
    man, run = run_of("sglang", truth["files"], split_ranks=True)
    assert run.counts.shape[0] == truth["counts"].shape[0] * fx.RANKS
    per_pass = np.asarray(run.counts, dtype=np.int64).reshape(-1, fx.RANKS, *run.counts.shape[1:]).sum(axis=1)
    np.testing.assert_array_equal(per_pass, truth["counts"])
    assert "one rank" in man.details["rows"]


def test_ranks_filter_keeps_only_those_ranks(dumps, run_of, fx):
    truth = dumps["sglang_per_pass"]
    _, all_split = run_of("sglang", truth["files"], split_ranks=True)
    _, only0 = run_of("sglang", truth["files"], ranks=[0])
    rank0 = np.asarray(all_split.counts).reshape(-1, fx.RANKS, *all_split.counts.shape[1:])[:, 0]
    np.testing.assert_array_equal(np.asarray(only0.counts), rank0)


def test_as_window_sums_every_pass(dumps, run_of):
    truth = dumps["vllm_window"]
    man, run = run_of("vllm", truth["files"], as_window=True)
    assert run.granularity == "window" and run.counts.shape[0] == 1
    np.testing.assert_array_equal(run.counts[0], truth["counts"].sum(axis=0))


def test_layer_ids_option_relabels_dumped_layers(dumps, run_of):
    truth = dumps["vllm_window"]
    man, _ = run_of("vllm", truth["files"], layer_ids=[3, 5, 7])
    assert man.routing.layer_ids == (3, 5, 7)


def test_megatron_trace_skips_mtp_and_notes_it(dumps, run_of):
    man, _ = run_of("megatron", dumps["megatron_trace"]["files"])
    assert any("MTP" in n for n in man.details["notes"])


def test_vllm_dump_carries_version_and_model(dumps, run_of):
    man, _ = run_of("vllm", dumps["vllm_window"]["files"])
    assert man.model.id == "tiny/moe"  # from the dump's model_name
    assert man.details["source"]["engine"] == "vllm"


def test_engine_version_option_is_recorded(dumps, run_of):
    man, _ = run_of("sglang", dumps["sglang_init_json"]["files"], engine_version="0.5.4")
    assert man.details["source"]["engine_version"] == "0.5.4"


def test_reimport_same_spec_rewrites_and_other_spec_needs_overwrite(dumps, tmp_path, imp):
    from dodoco.errors import DodocoError

    out = tmp_path / "run"
    imp("numpy", dumps["numpy_arrays"]["files"], out)
    imp("numpy", dumps["numpy_arrays"]["files"], out)  # same input: fine
    with pytest.raises(DodocoError, match="--overwrite"):
        imp("table", dumps["table_csv"]["files"], out)
    man = imp("table", dumps["table_csv"]["files"], out, overwrite=True)
    assert (
        json.loads((out / "manifest.json").read_text())["details"]["source"]["format"]
        == "table"
        == man.details["source"]["format"]
    )


def test_folder_input_reads_every_file(dumps, run_of):
    truth = dumps["sglang_per_pass"]
    _, run = run_of("sglang", [truth["files"][0].parent])
    np.testing.assert_array_equal(np.asarray(run.counts), truth["counts"])


def test_vllm_identical_rank_windows_are_counted_once(tmp_path, run_of, fx):
    """A backend that gathers every token to every rank records the same window on each rank."""
    from types import SimpleNamespace

    import torch

    from dodoco.ingest.vllm_dump import dump_expert_load

    rng = np.random.default_rng(0)
    window = rng.integers(0, 9, size=(5, 2, fx.E)).astype(np.int32)
    for r in range(3):
        state = SimpleNamespace(
            expert_load_window=torch.from_numpy(window),  # older vLLM: no model_states
            physical_to_logical_map=torch.arange(fx.E).repeat(2, 1),
            expert_load_window_step=0,
        )
        dump_expert_load(SimpleNamespace(model_runner=SimpleNamespace(eplb_state=state), rank=r), tmp_path / "d")
    man, run = run_of("vllm", [tmp_path / "d"])
    np.testing.assert_array_equal(np.asarray(run.counts), window[window.reshape(5, -1).sum(1) > 0])
    assert any("identical windows" in n for n in man.details["notes"])


def test_megatron_tpe_places_local_experts_by_ep_rank(tmp_path, run_of):
    """ep_size 2, expert-TP 2: ranks 0,1 (etp 0,1) hold experts 0-3, ranks 2,3 hold 4-7; etp 1 skipped."""
    import json as _json

    folder = tmp_path / "tokens_per_expert"
    folder.mkdir()
    local = {0: [1, 2, 3, 4], 1: [1, 2, 3, 4], 2: [5, 6, 7, 8], 3: [5, 6, 7, 8]}
    for r, c in local.items():
        (folder / f"rank{r}.jsonl").write_text(
            _json.dumps({"iter": 0, "block": "decoder", "layer": 0, "tpe": [c]}) + "\n"
        )
    man, run = run_of("megatron-tpe", [folder], ep_size=2, expert_tp_size=2)
    np.testing.assert_array_equal(run.counts[0, 0], [1, 2, 3, 4, 5, 6, 7, 8])
    assert man.routing.E == 8 and any("duplicate" in n for n in man.details["notes"])


def test_vllm_user_saved_npz_reads_like_the_dump(tmp_path, dumps, run_of):
    """A user's own .npz with vLLM's key names imports to the same counts as dodoco's .pt dump."""
    truth = dumps["vllm_window"]
    paths = []
    for f in truth["files"]:
        d = __import__("torch").load(f, weights_only=True)
        p = tmp_path / (f.stem + ".npz")
        np.savez(
            p,
            expert_load_window=d["expert_load_window"].numpy(),
            expert_load_window_step=np.int64(d["expert_load_window_step"]),
            physical_to_logical_map=d["physical_to_logical_map"].numpy(),
            rank=np.int64(d["rank"]),
        )
        paths.append(p)
    _, run = run_of("vllm", paths)
    np.testing.assert_array_equal(np.asarray(run.counts), truth["counts"])
