"""Harness pieces without a process group: row codes, buffer sets, memory check, watchdog, bandwidth."""

import threading
import time

import numpy as np
import pytest
import torch

from dodoco.errors import DodocoError
from dodoco.replay import harness as hz
from dodoco.replay.runner import bandwidth, stats


def _deliver(sends, splits, dst):
    """What rank dst receives: the rows each source sends it, in source order."""
    parts = []
    for j, send in enumerate(sends):
        start = int(splits[j, :dst].sum())
        parts.append(send[start:start + int(splits[j, dst])])
    return torch.cat(parts)


def test_row_codes_roundtrip_and_detect_corruption():
    splits = np.array([[2, 3, 1], [0, 4, 2], [5, 1, 1]])
    sends = [torch.empty(int(splits[i].sum()), 8, dtype=torch.bfloat16) for i in range(3)]
    assert all(hz.fill_rows(s, i) for i, s in enumerate(sends))
    for dst in range(3):
        recv = _deliver(sends, splits, dst)
        assert hz.check_rows(recv, dst, splits) == 0
    recv = _deliver(sends, splits, 1).clone()
    recv[4, 3] = 7.0  # one element of one row
    assert hz.check_rows(recv, 1, splits) == 1
    assert hz.check_rows(_deliver(sends, splits, 0), 1, splits) > 0  # rows meant for another rank


def test_odd_rows_are_not_coded():
    assert hz.fill_rows(torch.empty(3, 3, dtype=torch.bfloat16), 0) is False


def test_buffer_sets_exceed_twice_l2():
    assert hz.n_buffer_sets(10 << 20, 60 << 20) == 13  # 13 x 10 MB > 120 MB
    assert hz.n_buffer_sets(1 << 30, 60 << 20) == 4
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
    s = stats(np.arange(1, 102, dtype=float))
    assert s == {"median_ms": 51.0, "p10_ms": 11.0, "p90_ms": 91.0}
    bw = bandwidth(1e9, 10.0, 4)  # 1 GB per rank in 10 ms
    assert bw["algbw_GBps"] == pytest.approx(100.0) and bw["busbw_GBps"] == pytest.approx(75.0)
