"""Harness pieces without a process group: coded rows and their check, buffer sets, memory, watchdog."""

import threading
import time

import numpy as np
import pytest
import torch

from dodoco.errors import DodocoError
from dodoco.replay import harness as hz
from dodoco.replay.dispatchers.base import RankData, decode_rows, make_rows
from dodoco.replay.plan import ReplayCase
from dodoco.replay.results import bandwidth
from dodoco.replay.routing import attach_topk


def test_rows_encode_source_and_token_exactly_in_bf16():
    src, tok = torch.tensor([0, 3, 255, 7]), torch.tensor([0, 1, 4095, (1 << 20) - 1])
    rows = make_rows(src, tok, 16, torch.bfloat16)
    assert decode_rows(rows).tolist() == (src * (1 << 20) + tok).tolist()
    # sums of up to 17 copies stay exact (Megatron's combine adds the K copies of a token)
    assert torch.equal((rows.float() * 17).to(torch.bfloat16).float(), rows.float() * 17)


def _case(topk, slots):
    N = len(topk)
    c = ReplayCase("x", "real", 0, 0, np.zeros((N, N), dtype=np.int64))
    return attach_topk(c, topk, slots, "test")


def _deliver(case, rank, H, order):
    """What rank receives in the given order, built by brute force from every source's rows."""
    slots = np.asarray(case.slots)
    lo, hi = slots[:rank].sum(), slots[: rank + 1].sum()
    items = [(i, int(e), t) for i, tk in enumerate(case.topk) for t in range(len(tk)) for e in tk[t] if lo <= e < hi]
    items.sort(key=(lambda x: (x[0], x[1], x[2])) if order == "rank-major" else (lambda x: (x[1], x[0], x[2])))
    return make_rows(torch.tensor([i for i, _, _ in items]), torch.tensor([t for _, _, t in items]), H, torch.bfloat16)


def test_check_accepts_the_right_rows_and_names_each_kind_of_wrong():
    rng = np.random.default_rng(0)
    topk = [np.stack([rng.choice(6, 2, replace=False) for _ in range(T)]) for T in (5, 7, 4)]
    case = _case(topk, [2, 2, 2])
    data = RankData(case, 1, 12, torch.bfloat16, torch.device("cpu"))
    for order in ("rank-major", "expert-major"):
        assert data.compare(_deliver(case, 1, 12, order), order) == "ok"
    good = _deliver(case, 1, 12, "rank-major")
    other = _deliver(case, 1, 12, "expert-major")
    assert not torch.equal(other, good) and "out of place" in data.compare(other, "rank-major")  # another order
    assert "rows out of place" in data.compare(good.flip(0), "rank-major")
    assert "rows arrived, " in data.compare(good[1:], "rank-major")  # a missing row
    bad = good.clone()
    bad[2, 9] += 1  # one element of one row, outside the code columns
    assert "contents differ" in data.compare(bad, "rank-major")
    assert data.compare(_deliver(case, 0, 12, "rank-major"), "rank-major") != "ok"  # rows meant for rank 0
    # the send order: rows sorted by (expert, token)
    send_codes = decode_rows(data.x.index_select(0, data.send_tok)) & ((1 << 20) - 1)
    pairs = sorted((int(e), t) for t in range(7) for e in topk[1][t])
    assert send_codes.tolist() == [t for _, t in pairs]


def test_narrow_rows_are_not_checked():
    case = _case([np.array([[0, 1]]), np.array([[1, 0]])], [1, 1])
    assert (
        RankData(case, 0, 4, torch.bfloat16, torch.device("cpu"))
        .compare(torch.zeros(2, 4), "rank-major")
        .startswith("skipped")
    )


def test_buffer_sets_exceed_twice_l2():
    assert hz.n_buffer_sets(10 << 20, 60 << 20) == 13  # 13 x 10 MB > 120 MB
    assert hz.n_buffer_sets(1 << 30, 60 << 20) == 2
    assert hz.n_buffer_sets(1024, 60 << 20) == 64  # capped
    assert hz.need_memory(10, 20, 100, 4) == 4 * 40 * 100


def test_memory_check_names_the_size():
    with pytest.raises(DodocoError, match=r"need 1024.00 GiB per rank but the host has .* GiB available"):
        hz.check_memory(1 << 40, torch.device("cpu"), "replay buffers")


def test_watchdog_fires_only_without_beats():
    fired = threading.Event()
    dog = hz.Watchdog(0.3, rank=1, on_timeout=lambda msg: fired.set() if "rank 1" in msg else None).start()
    for _ in range(6):
        time.sleep(0.1)
        dog.beat()
    assert not fired.is_set()
    assert fired.wait(2.0)
    dog.stop()


def test_stats_and_bandwidth_convention():
    s = hz.stats(np.arange(1, 102, dtype=float))
    assert s == {"median_ms": 51.0, "p10_ms": 11.0, "p90_ms": 91.0}
    bw = bandwidth(1e9, 10.0, 4)  # 1 GB per rank in 10 ms
    assert bw["algbw_GBps"] == pytest.approx(100.0) and bw["busbw_GBps"] == pytest.approx(75.0)
