"""Write small expert-load dumps in each engine's own format, with the numbers they must import to.

Every writer draws a seeded routing (per forward pass, per rank, per token: K distinct experts from a
skewed distribution), writes it the way the engine's source writes it, and returns the truth:

    {"files": [paths], "counts": int64 [S, L', E] (rows in import order), "layer_ids": [kept ids],
     "excluded": [dense layer ids], "tokens": [T, L', K] or None, "E": E, "K": K}

Formats (see src/dodoco/ingest/*.py for the engine source each follows):

- ``sglang_stat``: ``{"rank", "logical_count": int32 [W, L, E], "average_utilization_rate_over_window"}``,
  a circular buffer of W rows with fewer passes than W (zero rows) and dense layers as zero rows.
- ``sglang_init_json``: ``{"logical_count": [L][E]}`` JSON for ``--init-expert-location``.
- ``sglang_per_pass`` / ``sglang_per_token``: one file per rank, ``{"records": [...],
  "last_physical_to_logical_map": int64 [L, P]}`` with redundant physical experts.
- ``vllm_window``: per-rank files written by ``dodoco.ingest.vllm_dump.dump_expert_load`` from a
  stand-in of vLLM's EplbState (wrapped circular window).
- ``megatron_trace`` / ``megatron_tpe``: JSON Lines as router_trace.py / activation_logging.py write.
- ``table_csv``, ``table_parquet``, ``numpy_arrays``.

Run ``python scripts/make_ingest_fixtures.py OUT_DIR`` to write them all for inspection; the tests
call the functions into a temporary folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

E, K, P, RANKS = 16, 4, 20, 4  # logical experts, top-k, physical experts (4 redundant), ranks
DENSE = 2  # SGLang/vLLM-style layer rows: the first DENSE layers are dense (zero rows)
L_ALL = 6  # model layers in SGLang dumps (dense included)


def route(rng, T: int, L: int, E: int = E, K: int = K, alpha: float = 1.2) -> np.ndarray:
    """Top-k ids int64 [T, L, K]: K distinct experts per token and layer, Zipf-skewed, sorted."""
    p = 1.0 / np.arange(1, E + 1) ** alpha
    logp = np.log(p / p.sum())[rng.permutation(E)]  # a different hot set per call
    g = rng.gumbel(size=(T, L, E)) + logp
    return np.sort(np.argsort(-g, axis=-1)[..., :K], axis=-1)


def counts_of(ids: np.ndarray, E: int = E) -> np.ndarray:
    """ids [T, L, K] (-1 ignored) -> int64 [L, E]."""
    L = ids.shape[1]
    out = np.zeros((L, E), dtype=np.int64)
    for l in range(L):
        v = ids[:, l, :]
        out[l] = np.bincount(v[v >= 0], minlength=E)
    return out


def phys_map(rng, L: int = L_ALL) -> np.ndarray:
    """int64 [L, P]: a permutation of the E logical experts per layer plus P - E redundant replicas."""
    rows = [np.r_[rng.permutation(E), rng.choice(E, P - E, replace=False)] for _ in range(L)]
    return np.stack(rows).astype(np.int64)


def to_physical(rng, ids: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Logical ids [T, L, K] -> physical ids (a random replica of each logical expert in that layer)."""
    out = np.empty_like(ids)
    for l in range(ids.shape[1]):
        replicas = [np.flatnonzero(m[l] == e) for e in range(E)]
        pick = rng.integers(0, 1 << 30, size=ids[:, l, :].shape)
        out[:, l, :] = [
            [replicas[e][r % replicas[e].size] for e, r in zip(row, prow)] for row, prow in zip(ids[:, l, :], pick)
        ]
    return out


def _torch():
    import torch

    return torch


def _with_dense(ids: np.ndarray) -> np.ndarray:
    """MoE-layer ids [T, L', K] -> all-layer ids [T, L_ALL, K] with -1 in the dense layers."""
    T = ids.shape[0]
    return np.concatenate([np.full((T, DENSE, ids.shape[2]), -1, dtype=ids.dtype), ids], axis=1)


def sglang_stat(out: Path, seed: int = 0, passes: int = 7, buffer: int = 10) -> dict:
    """A stat dump: logical_count int32 [buffer, L_ALL, E], rows >= passes zero, dense rows zero."""
    torch, rng = _torch(), np.random.default_rng(seed)
    buf = np.zeros((buffer, L_ALL, E), dtype=np.int32)
    truth = []
    for i in range(passes):  # every rank's tokens of pass i, all-reduced
        c = sum(counts_of(_with_dense(route(rng, int(rng.integers(3, 9)), L_ALL - DENSE))) for _ in range(RANKS))
        buf[i % buffer] = c
        truth.append(c[DENSE:])
    path = Path(out) / "expert_distribution_recorder_1716000000.123.pt"
    torch.save({"rank": 0, "logical_count": torch.from_numpy(buf), "average_utilization_rate_over_window": None}, path)
    return {
        "files": [path],
        "counts": np.stack(truth),
        "layer_ids": list(range(DENSE, L_ALL)),
        "excluded": list(range(DENSE)),
        "tokens": None,
        "E": E,
        "K": K,
    }


def sglang_init_json(out: Path, seed: int = 1) -> dict:
    """An --init-expert-location JSON: {"logical_count": [L_ALL][E]} (one window, dense rows zero)."""
    rng = np.random.default_rng(seed)
    c = counts_of(_with_dense(route(rng, 50, L_ALL - DENSE)))
    path = Path(out) / "init_expert_location.json"
    path.write_text(json.dumps({"logical_count": c.tolist()}))
    return {
        "files": [path],
        "counts": c[None, DENSE:],
        "layer_ids": list(range(DENSE, L_ALL)),
        "excluded": list(range(DENSE)),
        "tokens": None,
        "E": E,
        "K": K,
    }


def _sglang_detail(out: Path, seed: int, passes: int, per_token: bool) -> dict:
    torch, rng = _torch(), np.random.default_rng(seed)
    m = phys_map(rng)
    per_rank = {r: [] for r in range(RANKS)}
    truth_counts, truth_tokens = [], []
    for fp in range(100, 100 + passes):  # forward_pass_id is a global counter
        row_c, row_t = np.zeros((L_ALL - DENSE, E), dtype=np.int64), []
        for r in range(RANKS):
            T = int(rng.integers(2, 7))
            ids = route(rng, T, L_ALL - DENSE)
            row_c += counts_of(ids)
            row_t.append(ids)
            phys = _with_dense(to_physical(rng, ids, m[DENSE:]))  # [T, L_ALL, K]
            gpc = np.zeros((L_ALL, P), dtype=np.int32)
            for l in range(L_ALL):
                v = phys[:, l, :]
                gpc[l] = np.bincount(v[v >= 0], minlength=P)
            rec = {"forward_pass_id": fp, "rank": r, "gatherer_key": "primary"}
            if per_token:
                padded = np.full((L_ALL, T + 1, 8), -1, dtype=np.int32)  # K=4 of 8 slots; one padded token
                padded[:, :T, :K] = phys.transpose(1, 0, 2)
                rec.update(
                    input_ids=list(range(T + 1)),
                    positions=list(range(T + 1)),
                    extend_seq_lens=[T + 1],
                    forward_mode=1,
                    topk_ids_of_layer=torch.from_numpy(padded),
                    misc_objects=[],
                    global_physical_count=torch.from_numpy(gpc),
                )
            else:
                rec["global_physical_count"] = torch.from_numpy(gpc)
            per_rank[r].append(rec)
        truth_counts.append(row_c)
        truth_tokens.append(np.concatenate(row_t))
    files = []
    for r, recs in per_rank.items():
        path = Path(out) / f"expert_distribution_recorder_1716000000.{r}_{r}.pt"
        torch.save({"records": recs, "last_physical_to_logical_map": torch.from_numpy(m)}, path)
        files.append(path)
    return {
        "files": files,
        "counts": np.stack(truth_counts),
        "layer_ids": list(range(DENSE, L_ALL)),
        "excluded": list(range(DENSE)),
        "tokens": np.concatenate(truth_tokens) if per_token else None,
        "E": E,
        "K": K,
        "map": m,
    }


def sglang_per_pass(out: Path, seed: int = 2, passes: int = 6) -> dict:
    """per_pass dumps: one file per rank, physical counts [L_ALL, P] per forward pass, map [L_ALL, P]."""
    return _sglang_detail(out, seed, passes, per_token=False)


def sglang_per_token(out: Path, seed: int = 3, passes: int = 4) -> dict:
    """per_token dumps: topk_ids_of_layer int32 [L_ALL, T+1, 8] per pass per rank (-1 padding)."""
    return _sglang_detail(out, seed, passes, per_token=True)


def vllm_window(out: Path, seed: int = 4, steps: int = 11, window: int = 8, L: int = 3) -> dict:
    """vLLM EPLB windows of RANKS ranks (wrapped: steps > window) written by dodoco's vLLM dump."""
    from dodoco.ingest.vllm_dump import dump_expert_load

    torch, rng = _torch(), np.random.default_rng(seed)
    m = phys_map(rng, L)
    wins = np.zeros((RANKS, window, L, P), dtype=np.int32)
    logical = np.zeros((steps, L, E), dtype=np.int64)
    for s in range(steps):
        for r in range(RANKS):
            ids = route(rng, int(rng.integers(2, 7)), L)
            logical[s] += counts_of(ids)
            phys = to_physical(rng, ids, m)
            for l in range(L):
                wins[r, s % window, l] = np.bincount(phys[:, l, :].ravel(), minlength=P)
    files = []
    for r in range(RANKS):
        ms = SimpleNamespace(
            expert_load_window=torch.from_numpy(wins[r]),
            model_name="tiny/moe",
            physical_to_logical_map=torch.from_numpy(m),
        )
        state = SimpleNamespace(model_states={"h": ms}, expert_load_window_step=steps % window)
        worker = SimpleNamespace(model_runner=SimpleNamespace(eplb_state=state), rank=r)
        files += [Path(p) for p in dump_expert_load(worker, str(out), tag="t0")]
    return {
        "files": files,
        "counts": logical[steps - window :],
        "layer_ids": list(range(L)),
        "excluded": [],
        "tokens": None,
        "E": E,
        "K": K,
        "map": m,
    }


def megatron_trace(out: Path, seed: int = 5, steps: int = 3, micro: int = 2, ranks: int = 2) -> dict:
    """router_trace_rank<r>.jsonl: decoder layers 1..3 (layer 0 dense: no router), plus MTP records."""
    rng = np.random.default_rng(seed)
    layers = [1, 2, 3]
    lines = {r: [] for r in range(ranks)}
    truth_c, truth_t = [], []
    for step in range(steps):
        for mb in range(micro):
            row_c, row_t = np.zeros((len(layers), E), dtype=np.int64), []
            for r in range(ranks):
                ids = route(rng, int(rng.integers(2, 6)), len(layers))
                row_c += counts_of(ids)
                row_t.append(ids)
                for j, layer in enumerate(layers):
                    lines[r].append(
                        {
                            "step": step,
                            "stage": "pre_dispatch",
                            "block": "decoder",
                            "layer": layer,
                            "rank": r,
                            "num_tokens": int(ids.shape[0]),
                            "topk": K,
                            "top_indices": ids[:, j, :].tolist(),
                        }
                    )
                mtp = route(rng, int(ids.shape[0]), 1)
                lines[r].append(
                    {
                        "step": step,
                        "stage": "pre_dispatch",
                        "block": "mtp",
                        "layer": 0,
                        "rank": r,
                        "num_tokens": int(ids.shape[0]),
                        "topk": K,
                        "top_indices": mtp[:, 0].tolist(),
                        "mtp_idx": 0,
                    }
                )
            truth_c.append(row_c)
            truth_t.append(np.concatenate(row_t))
    files = []
    for r in range(ranks):
        path = Path(out) / f"router_trace_rank{r}.jsonl"
        path.write_text("".join(json.dumps(rec) + "\n" for rec in lines[r]))
        files.append(path)
    return {
        "files": files,
        "counts": np.stack(truth_c),
        "layer_ids": layers,
        "excluded": [],
        "tokens": np.concatenate(truth_t),
        "E": E,
        "K": K,
    }


def megatron_tpe(out: Path, seed: int = 6, iters=(9, 19), micro: int = 3, ep: int = 2) -> dict:
    """tokens_per_expert/rank<r>.jsonl: per (iter, layer), per micro-batch, the rank's local experts."""
    rng = np.random.default_rng(seed)
    layers, e_local = [0, 1], E // ep
    truth = []
    lines = {r: [] for r in range(ep)}
    for it in iters:
        per_mb = [counts_of(route(rng, 12, len(layers))) for _ in range(micro)]  # global [L, E] per mb
        truth += per_mb
        for r in range(ep):
            for j, layer in enumerate(layers):
                tpe = [c[j, r * e_local : (r + 1) * e_local].tolist() for c in per_mb]
                lines[r].append({"iter": it, "block": "decoder", "layer": layer, "tpe": tpe})
    folder = Path(out) / "tokens_per_expert"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for r in range(ep):
        path = folder / f"rank{r}.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines[r]))
        files.append(path)
    return {
        "files": files,
        "counts": np.stack(truth),
        "layer_ids": layers,
        "excluded": [],
        "tokens": None,
        "E": E,
        "K": K,
    }


def _table_rows(rng, steps: int, layer_ids, ranks: int):
    rows, truth = [], []
    for s in range(steps):
        tot = np.zeros((len(layer_ids), E), dtype=np.int64)
        for r in range(ranks):
            c = counts_of(route(rng, 10, len(layer_ids)))
            tot += c
            for j, layer in enumerate(layer_ids):
                for e in range(E):
                    if c[j, e]:
                        rows.append((s, r, layer, e, int(c[j, e])))
        truth.append(tot)
    return rows, np.stack(truth)


def table_csv(out: Path, seed: int = 7) -> dict:
    """CSV with step, rank, layer, expert, count (zeros omitted; a dense layer 0 listed with count 0)."""
    rng = np.random.default_rng(seed)
    rows, truth = _table_rows(rng, 5, [1, 2, 3], 2)
    rows += [(0, 0, 0, e, 0) for e in range(E)]
    path = Path(out) / "expert_counts.csv"
    path.write_text("step,rank,layer,expert,count\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return {"files": [path], "counts": truth, "layer_ids": [1, 2, 3], "excluded": [0], "tokens": None, "E": E, "K": K}


def table_parquet(out: Path, seed: int = 8) -> dict:
    """Parquet with layer, expert, count only: one aggregate window."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    c = counts_of(route(rng, 40, 2))
    layer, expert = np.meshgrid([5, 6], np.arange(E), indexing="ij")
    path = Path(out) / "expert_counts.parquet"
    pq.write_table(pa.table({"layer": layer.ravel(), "expert": expert.ravel(), "count": c.ravel()}), path)
    return {"files": [path], "counts": c[None], "layer_ids": [5, 6], "excluded": [], "tokens": None, "E": E, "K": K}


def numpy_arrays(out: Path, seed: int = 9) -> dict:
    """counts_steps.npy [steps, L, E] with a dense (zero) layer 0."""
    rng = np.random.default_rng(seed)
    steps = np.stack([counts_of(_with_dense(route(rng, 9, L_ALL - DENSE))) for _ in range(6)]).astype(np.uint32)
    path = Path(out) / "counts_steps.npy"
    np.save(path, steps)
    return {
        "files": [path],
        "counts": steps[:, DENSE:].astype(np.int64),
        "layer_ids": list(range(DENSE, L_ALL)),
        "excluded": list(range(DENSE)),
        "tokens": None,
        "E": E,
        "K": K,
    }


WRITERS = {
    "sglang_stat": sglang_stat,
    "sglang_init_json": sglang_init_json,
    "sglang_per_pass": sglang_per_pass,
    "sglang_per_token": sglang_per_token,
    "vllm_window": vllm_window,
    "megatron_trace": megatron_trace,
    "megatron_tpe": megatron_tpe,
    "table_csv": table_csv,
    "table_parquet": table_parquet,
    "numpy_arrays": numpy_arrays,
}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="ingest_fixtures", help="folder to write the dumps into")
    out = Path(p.parse_args(argv).out)
    for name, fn in WRITERS.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        truth = fn(out / name)
        np.save(out / name / ".expected_counts.npy", truth["counts"])
        print(f"{name:18s} {len(truth['files'])} file(s), expected counts {list(truth['counts'].shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
