"""The whole-layer replay (--layer): received tokens, each rank's expert loads and the slowest-rank step time."""

import json

import numpy as np
import pytest
import torch

from dodoco.replay.dispatchers.base import RankData, expected_rows, make_rows
from dodoco.replay.layer import layer_check, layer_plan, layer_stages, rank_loads
from dodoco.replay.plan import ReplayCase
from dodoco.replay.routing import attach_topk


def _case(N=2, slots=(3, 3), T=(7, 5), K=2, seed=0):
    """A case of random top-k (K distinct physical experts per token) on N ranks."""
    rng = np.random.default_rng(seed)
    E = int(sum(slots))
    topk = [np.stack([rng.choice(E, K, replace=False) for _ in range(t)]) for t in T]
    base = ReplayCase("prose", "real", 0, 0, np.zeros((N, N), dtype=np.int64), model="m")
    return attach_topk(base, topk, np.array(slots), "traces")


def _rows_of(case, rank, order, H=16):
    want = expected_rows(case.topk, case.slots, rank, order)
    return make_rows(torch.as_tensor(want >> 20), torch.as_tensor(want & ((1 << 20) - 1)), H, torch.bfloat16)


class _Fake:
    """A dispatcher that delivered ``rows``: only what the layer plan and check read."""

    def __init__(self, order, align=1, rows=None):
        self.order, self.expert_align, self.rows = order, align, rows
        self.stages, self.n_dispatch = ("a2a", "a2a back"), 1

    def layer_rows(self, state, k):
        return self.rows


def test_rank_loads_are_each_ranks_tokens_per_local_expert():
    case = _case(slots=(2, 4), T=(9, 4), K=3)
    for r in range(2):
        lo, n = int(np.sum(case.slots[:r])), int(case.slots[r])
        by_hand = np.zeros(n, dtype=int)
        for t in case.topk:
            for e in np.asarray(t).ravel():
                if lo <= e < lo + n:
                    by_hand[e - lo] += 1
        assert rank_loads(case, r).tolist() == by_hand.tolist()


@pytest.mark.parametrize("order", ["rank-major", "expert-major"])
def test_the_experts_read_their_own_tokens_group_by_group(order):
    case = _case(slots=(3, 3), T=(11, 6), K=2, seed=3)
    for rank in range(2):
        data = RankData(case, rank, 16, torch.bfloat16, torch.device("cpu"))
        d = _Fake(order, rows=_rows_of(case, rank, order))
        plan = layer_plan(d, data)
        assert plan.groups.tolist() == plan.loads.tolist() == rank_loads(case, rank).tolist()
        assert plan.offs.tolist() == np.cumsum(plan.loads).tolist()
        assert layer_check(d, {"last": 0}, plan, data) == "ok"
        if order == "rank-major":  # a permutation that is not the routing's must be caught
            plan.perm = plan.perm.flip(0)
            assert layer_check(d, {"last": 0}, plan, data).startswith("experts' input:")


def test_an_aligned_expert_major_delivery_pads_each_block():
    """nvshmem's all_to_all_vdev_2d starts every expert's block at a multiple of 8 rows: the groups must
    include the padding (all but the last), and an unpadded layout read as padded is caught."""
    case = _case(slots=(4, 4), T=(13, 9), K=3, seed=5)
    data = RankData(case, 0, 16, torch.bfloat16, torch.device("cpu"))
    loads = rank_loads(case, 0)
    dense = _rows_of(case, 0, "expert-major")
    pad = -(-loads // 8) * 8
    padded = torch.zeros((int(pad.sum()), 16), dtype=torch.bfloat16)
    starts = np.concatenate([[0], np.cumsum(pad)[:-1]])
    o = 0
    for s, n in zip(starts, loads):
        padded[s : s + n] = dense[o : o + n]
        o += n
    d = _Fake("expert-major", 8, padded)
    plan = layer_plan(d, data)
    assert plan.groups.tolist() == pad[:-1].tolist() + [int(loads[-1])]
    assert layer_check(d, {"last": 0}, plan, data) == "ok"
    d.rows = dense  # delivered unpadded, read as padded
    assert layer_check(d, {"last": 0}, plan, data) != "ok"
    assert layer_stages(d) == ("a2a", "experts", "a2a back")
    assert layer_stages(_Fake("rank-major")) == ("a2a", "sort by local expert", "experts", "unsort", "a2a back")


def test_gloo_layer_replay_two_ranks(runs_dir, tmp_path, cli_child):
    out = tmp_path / "layer.json"
    flags = (
        "--condition prose --backend gloo --nproc 2 --hidden 64 --expert-width 32 --layer --dispatcher all --batch 2 -o"
    )
    p = cli_child("replay", runs_dir, *flags.split(), out)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    assert (
        r["mode"] == "layer"
        and r["layer"]["kernel"] == "grouped_mm"
        and (r["layer"]["hidden"], r["layer"]["width"]) == (64, 32)
    )
    st = r["dispatchers"]
    assert st["nccl"]["status"] == "measured"
    assert all(st[n]["status"] == "not measured" and st[n]["reason"] for n in st if n != "nccl")
    assert "whole-layer replay" in p.stdout and "experts_ms" in p.stdout
    _check_rows(r, runs_dir)
    _check_prediction(r)


def _check_prediction(r):
    """simulate's prediction reads exactly the replayed steps and layers: with a hand-set compute model its
    compute term is the model on the busiest of the loads the ranks really ran, averaged over the cases."""
    from dodoco.compute.model import ComputeModel
    from dodoco.simulate.layer_compare import compare_rows, targets
    from dodoco.simulate.cluster import AlltoallTimer, Cluster

    model = ComputeModel(
        "h200", "NVIDIA H200", "grouped_mm", "linear", 16, 128, 132, np.array([0.01, 0.0, 0.0, 1.0, 0.0]), {}
    )
    timer = AlltoallTimer(Cluster(name="t", gpus_per_node=8, nvlink_bw=100.0, nic_bw=10.0))
    rows = compare_rows([r], {"hand": (timer, model, "hand-set")})
    assert [x["dispatcher"] for x in rows] == ["nccl"]
    real = [x for x in r["rows"] if x["kind"] == "real"]
    busiest = [max(0.01 + (-(-np.asarray(v) // 16) * 16).sum() * 6 * 64 * 32 / 1e9 for v in x["loads"]) for x in real]
    assert rows[0]["hand"]["compute_ms"] == pytest.approx(np.mean(busiest))
    meas = np.mean([x["whole_layer"]["median_ms"] for x in real])
    assert rows[0]["measured"]["layer_ms"] == pytest.approx(meas) and rows[0]["measured"]["cases"] == len(real)
    assert rows[0]["hand"]["error"] == pytest.approx(rows[0]["hand"]["layer_ms"] / meas - 1)
    t = targets(rows, "hand", band=(0, 1e9), median=1e9, p90=1e9)
    assert t == [
        {
            "dispatcher": "nccl",
            "calibration": "hand",
            "rows": 1,
            "median_abs_err": abs(rows[0]["hand"]["error"]),
            "p90_abs_err": pytest.approx(abs(rows[0]["hand"]["error"])),
            "met": True,
        }
    ]


def _check_rows(r, runs_dir):
    from dodoco.compute.cases import local_loads
    from dodoco.ep.layout import contiguous
    from dodoco.store import open_run

    run = open_run(runs_dir / "prose-L16")
    from dodoco.ep.steps import run_source

    steps = run_source(run, 0).steps(2 * 2)  # N = 2 ranks x B = 2 sequences, the seeded order
    real = [x for x in r["rows"] if x["kind"] == "real"]
    assert len(real) == steps.shape[0] * run.L
    for x in r["rows"]:
        assert x["check"] == "ok" and x["dispatcher"] == "nccl"
        assert list(x["stages"]) == ["all_to_all", "sort by local expert", "experts", "unsort", "all_to_all back"]
        # the step waits for its slowest rank: never faster than any rank's own total
        assert x["whole_layer"]["median_ms"] >= max(rk["total_ms"] for rk in x["ranks"]) - 1e-9
        assert len(x["experts_ms"]) == 2 and x["experts"]["median_ms"] >= min(x["experts_ms"])
        got = [sum(v) for v in x["loads"]]
        assert got == np.asarray(x["splits"]).sum(0).tolist()  # each rank's received rows, all to its experts
    for x in real:  # independently: the run's step counts through the placement
        want = local_loads(steps[x["step"], x["layer"]], contiguous(run.E, 2).layer(x["layer"]))
        assert x["loads"] == [w.tolist() for w in want]
    summ = {(s["condition"]): s for s in r["layer_summary"]}
    assert summ["balanced"]["vs_balanced"] == pytest.approx(1.0)


def test_a_layer_replay_is_not_a_calibration(tmp_path):
    from dodoco.errors import DodocoError
    from dodoco.simulate.samples import load_groups

    f = tmp_path / "l.json"
    f.write_text(json.dumps({"schema": "dodoco.replay/2", "mode": "layer", "backend": "nccl", "N": 2, "rows": []}))
    with pytest.raises(DodocoError, match="is a whole-layer replay"):
        load_groups([f])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--layer", "--hidden", "64"], "run ... does not record its expert shape"),
        (["--layer", "--shape", "deepseek-v3", "--hidden", "64"], "have H=7168 but the rows are --hidden 64"),
        (["--layer", "--expert-width", "32", "--hidden", "64", "--kernel", "megatron"], "--kernel megatron: "),
        (["--layer", "--expert-width", "32", "--hidden", "64", "--kernel", "tegrouped"], "unknown --kernel"),
        (["--layer", "--expert-width", "32", "--hidden", "64", "--dtype", "fp32"], "--layer runs the experts in bf16"),
    ],
)
def test_layer_mistakes_are_one_line(runs_dir, capsys, extra, message):
    from dodoco.cli import main

    rc = main(["replay", str(runs_dir), "--condition", "prose", "--backend", "gloo", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    for part in message.split(" ... "):
        assert part in err[0], err[0]
