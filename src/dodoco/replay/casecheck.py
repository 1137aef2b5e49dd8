"""One case on one rank, outside the timed loop: its rotating buffer sets and the check of what it delivers.

Shared by the dispatch replay (``runner.replay_one``) and the whole-layer replay (``layer_run.layer_one``).
"""

from __future__ import annotations

from dodoco.replay import harness as hz
from dodoco.replay.dispatchers.base import RankData, noop

__all__ = ["case_name", "case_sets", "check_case"]


def case_name(case) -> str:
    return f"{case.condition} step {case.step} layer {case.layer}"


def case_sets(case, ctx) -> int:
    """Rotating buffer sets of a case on this rank (send, receive and combine-back rows past 2 x L2)."""
    s = case.splits
    rows = 2 * int(s[ctx.rank].sum()) + int(s[:, ctx.rank].sum())
    return hz.n_buffer_sets(rows * ctx.cfg.row_bytes, ctx.l2, ctx.cfg.buffers)


def check_case(d, data: RankData, state, case, ctx, more=None) -> str:
    """One dispatch + combine outside the timed loop, checked on every rank against the routing (and by
    ``more(state)`` when given) -> 'ok', 'off' or 'skipped (...)'; a failed check stops the replay."""
    if not ctx.cfg.check:
        return "off"
    d.step(state, 0, noop)
    hz.sync(ctx.device)
    msg = data.compare(d.received(state), d.order, dedup=d.bytes == "dedup")
    msg = d.combined(state, data) if msg == "ok" else msg
    msg = more(state) if msg == "ok" and more is not None else msg
    check = hz.agree(msg, ctx.device)
    if check != "ok" and not check.startswith("skipped"):
        raise RuntimeError(f"replay check failed: {d.name} on {case_name(case)}: {check}")
    return check
