"""Synthetic replay results (schemas 1 and 2) whose times follow a known truth, for the model tests.

The truth is any function of the byte matrix; ``truth_form`` builds one from a form of
``dodoco.simulate.forms`` with parameters that may depend on the per-rank size, as measured on H200s
(NCCL at 4 ranks: skew 1.10 costs 1.04x at 256 MB per rank but 1.43x at 470 MB).
"""

import numpy as np

from dodoco.replay.plan import balanced_splits, skewed_splits
from dodoco.simulate.forms import FORMS, Balanced, feats

MB = 1 << 20
BAL = Balanced(30e-6, np.array([64.0 * MB]), np.array([300e9]))  # alpha + m / 300 GB/s


def truth_form(name, theta_of_mb, bal=BAL, noise=0.0, seed=0):
    """t(b[N, N]) = form ``name`` with parameters theta_of_mb(per-rank MB), times (1 + noise * N(0, 1))."""
    rng = np.random.default_rng(seed)

    def t(b):
        f = feats(b)
        th = np.asarray(theta_of_mb(float(f.x[0]) / MB), dtype=float)
        return float(FORMS[name].predict(f, bal, th)[0]) * (1.0 + noise * rng.standard_normal())

    return t


def hot_pair_splits(rows: int, N: int, rho: float) -> np.ndarray:
    """Every rank sends rows evenly, except rank 0 sends rho/N of its rows to rank 1."""
    s = balanced_splits(np.full(N, rows))
    h = int(round(rho / N * rows))
    rest = rows - h
    s[0] = [rest // (N - 1) + (1 if j < rest % (N - 1) else 0) for j in range(N)]
    s[0, 1] = h
    s[0, 0] += rows - s[0].sum()
    return s


def routing_splits(rows: int, N: int, rng) -> np.ndarray:
    """Uneven splits of the same per-rank rows (a routing-like case)."""
    w = rng.gamma(2.0, size=(N, N)) + np.eye(N) * 0.5
    s = np.floor(w / w.sum(1, keepdims=True) * rows).astype(np.int64)
    s[:, 0] += rows - s.sum(1)
    return s


def _case(truth, splits, row_bytes, **meta):
    s = np.asarray(splits)
    b = s * float(row_bytes)
    return {
        **meta,
        "splits": s.tolist(),
        "row_bytes": row_bytes,
        "per_rank_bytes": float(b.sum() / s.shape[0]),
        "dispatch": {"median_ms": 1e3 * truth(b)},
        "combine": {"median_ms": 1e3 * truth(b.T)},
        "check": "ok",
        "bytes": "copies",
    }


def _grid_rows(truth, N, sizes_mb, skews, patterns, dispatcher, row_bytes) -> list[dict]:
    """The grid cases of ``replay_v2``: every size x skew (at most N) x pattern."""
    rows = []
    for mb in sizes_mb:
        r = int(mb * MB // row_bytes)
        for rho in skews:
            for pat in patterns:
                if rho > N:
                    continue
                s = skewed_splits(np.full(N, r), rho) if pat == "hot-receiver" else hot_pair_splits(r, N, rho)
                rows.append(
                    _case(
                        truth,
                        s,
                        row_bytes,
                        kind="grid",
                        pattern=pat,
                        rho=rho,
                        condition=f"grid-{pat}",
                        step=-1,
                        layer=-1,
                        dispatcher=dispatcher,
                        N=N,
                    )
                )
    return rows


def _routing_rows(truth, N, routing_mb, routing_cases, dispatcher, row_bytes, rng) -> list[dict]:
    """The routing cases of ``replay_v2``: ``routing_cases`` uneven splits at each size of ``routing_mb``."""
    rows = []
    for k, mb in enumerate(routing_mb):
        r = int(mb * MB // row_bytes)
        for i in range(routing_cases):
            rows.append(
                _case(
                    truth,
                    routing_splits(r, N, rng),
                    row_bytes,
                    kind="real",
                    pattern="routing",
                    model="fake:model",
                    condition="prose",
                    step=k * 100 + i,
                    layer=i % 2,
                    dispatcher=dispatcher,
                    N=N,
                )
            )
    return rows


def replay_v2(
    truth,
    N=4,
    sizes_mb=(16, 64, 256, 512),
    skews=(1.0, 1.1, 1.25, 1.5, 2.0, 3.0),
    routing_mb=(24, 100, 400),
    routing_cases=6,
    dispatcher="nccl",
    row_bytes=4096,
    seed=0,
    machine="fake-x4",
    patterns=("hot-receiver", "hot-pair"),
) -> dict:
    """A schema-2 result: the grid (sizes x skews x patterns) and routing cases at off-grid sizes."""
    rng = np.random.default_rng(seed)
    rows = _grid_rows(truth, N, sizes_mb, skews, patterns, dispatcher, row_bytes)
    rows += _routing_rows(truth, N, routing_mb, routing_cases, dispatcher, row_bytes, rng)
    rows[0]["check"] = "off"  # checks switched off: still a measurement
    return {
        "schema": "dodoco.replay/2",
        "machine": machine,
        "backend": "nccl",
        "N": N,
        "device": {"name": "Fake GPU", "count": N, "type": "cuda"},
        "created": "2026-01-01T00:00:00+00:00",
        "dispatchers": {dispatcher: {"status": "measured"}},
        "rows": rows,
    }


def replay_v1(sweep: bool = False) -> dict:
    """A schema-1 result of 2 ranks: one real, one skew and one balanced case (0.1 ms each), with
    a one-point size sweep where ``sweep``."""
    cases = [
        {"kind": k, "condition": c, "step": 0, "layer": 0, "splits": [[1000, 200], [300, 900]]}
        | {"dispatch": {"median_ms": 0.1}, "combine": {"median_ms": 0.1}}
        for k, c in (("real", "prose"), ("skew", "skew-2"), ("balanced", "balanced"))
    ]
    d = {"schema": "dodoco.replay/1", "N": 2, "dispatcher": "alltoall", "row_bytes": 4096, "backend": "nccl"}
    d |= {"device": {"name": "Fake", "count": 2}, "source": {"real": {"model": "m"}}, "cases": cases}
    return d | ({"sweep": [{"bytes_per_rank": 1 << 24, "median_ms": 0.07}]} if sweep else {})


def load_synthetic(tmp_path, d: dict, name: str = "r.json"):
    """``load_groups`` of the result ``d`` written to tmp_path/name -> (groups, sources)."""
    import json

    from dodoco.simulate.samples import load_groups

    tmp_path.mkdir(parents=True, exist_ok=True)
    f = tmp_path / name
    f.write_text(json.dumps(d))
    return load_groups([f])
