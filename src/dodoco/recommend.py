"""Dispatcher advice: alltoall, DeepEP or HybridEP for a hardware, EP degree and measured skew.

Follows the dispatcher-selection guidance (NVIDIA's perf-moe-dispatcher-selection skill, summarised
in docs/dispatch.md):

- by hardware: H100 (and H200, the same Hopper fabric): DeepEP if its package is installed; B200:
  DeepEP, unless a HybridEP path is available; GB200 / GB300 NVL72: HybridEP if installed; unknown
  hardware or first bring-up: alltoall;
- by EP degree: small EP (<= 8, one NVLink node): the choice is second-order, start with alltoall
  (or DeepEP); medium EP (9..64): DeepEP often becomes worthwhile; large EP (> 64): HybridEP is the
  target on NVL72 systems. The band limits are DODOCO's reading of "small / medium / large";
- availability gate: a backend whose package is not importable is reported unavailable (an
  environment limitation), never ranked, and alltoall stays the measured correctness fallback.

The measured receiver skew does not change the ranking: every dispatcher delivers the same tokens
to the same ranks, so skew is a placement problem (EPLB), and the advice says so with the number.
"""

from __future__ import annotations

import importlib.util

from dodoco.errors import DodocoError, did_you_mean

__all__ = ["BACKENDS", "HARDWARE", "availability", "ep_band", "recommend", "run_skew"]

HARDWARE = {"h100": "hopper", "h200": "hopper", "b200": "blackwell", "gb200": "nvl72", "gb300": "nvl72",
            "unknown": "unknown"}
BACKENDS = {"alltoall": "torch.distributed (NCCL all_to_all_single)", "deepep": "deep_ep",
            "hybridep": "deep_ep.HybridEPBuffer (DeepEP hybrid-ep branch)"}


def availability() -> dict[str, tuple[bool, str]]:
    """{backend: (importable, how it was checked)} on this machine; nothing is imported but deep_ep."""
    out = {"alltoall": (importlib.util.find_spec("torch") is not None, "find_spec('torch')")}
    try:
        has_deepep = importlib.util.find_spec("deep_ep") is not None
    except (ImportError, ValueError):
        has_deepep = False
    out["deepep"] = (has_deepep, "find_spec('deep_ep')")
    hybrid = False
    if has_deepep:
        try:
            import deep_ep  # noqa: PLC0415

            hybrid = hasattr(deep_ep, "HybridEPBuffer")
        except Exception:  # a broken install is as good as none
            hybrid = False
    out["hybridep"] = (hybrid, "deep_ep exposes HybridEPBuffer")
    return out


def ep_band(N: int) -> str:
    if N < 1:
        raise DodocoError(f"--ep {N}: the EP degree must be >= 1")
    return "small" if N <= 8 else ("medium" if N <= 64 else "large")


def _preference(hw: str, band: str, avail: dict) -> tuple[list[str], list[str]]:
    """Ordered backends by the guidance, with the reasons that set the order."""
    cls = HARDWARE[hw]
    if cls == "unknown":
        return ["alltoall", "deepep", "hybridep"], ["unknown hardware / first bring-up: alltoall is the "
                                                    "easiest path for correctness and debugging"]
    if cls == "hopper":
        order, why = ["deepep", "alltoall", "hybridep"], [f"{hw.upper()} (Hopper): DeepEP is the strong default, "
                                                          "above all for cross-node EP"]
    elif cls == "blackwell":
        if avail["hybridep"][0]:
            order, why = ["hybridep", "deepep", "alltoall"], ["B200 with a HybridEP path available: try HybridEP"]
        else:
            order, why = ["deepep", "alltoall", "hybridep"], ["B200: DeepEP is a good first choice"]
    else:
        order, why = ["hybridep", "deepep", "alltoall"], [f"{hw.upper()} NVL72: HybridEP fits the NVLink domain "
                                                          "and uses less memory"]
    if band == "small":
        order = ["alltoall"] + [b for b in order if b != "alltoall"]
        why.append("small EP: the dispatcher choice is usually second-order; start with alltoall")
    elif band == "medium":
        why.append("medium EP: DeepEP often becomes worthwhile once EP communication is visible")
    elif cls == "nvl72":
        why.append("large EP on NVL72: HybridEP is usually the best target")
    else:
        why.append("large EP: dispatcher choice matters more as EP grows")
    return order, why


def _skew_reason(skew: float, N: int) -> str:
    if skew >= 1.5:
        return (f"measured receiver skew {skew:.2f} at EP {N}: the busiest rank receives {skew:.2f}x the mean "
                "whatever the dispatcher (DeepEP/HybridEP send one copy per destination rank, fewer bytes, "
                "same skew): rebalance the placement first (dodoco analyze --placement eplb)")
    if skew >= 1.15:
        return (f"measured receiver skew {skew:.2f} at EP {N}: moderate; the dispatcher does not remove it, an "
                "EPLB placement can")
    return f"measured receiver skew {skew:.2f} at EP {N}: near balanced, dispatcher gains come from the kernels"


def recommend(hardware: str, ep: int, skew: float | None = None, available: dict | None = None) -> dict:
    """Advice -> {"choice", "reasons", "rows"}: rows per backend (rank, status, evidence).

    available: {backend: (bool, how)} (default: ``availability()`` on this machine).
    """
    hw = hardware.lower()
    if hw not in HARDWARE:
        raise did_you_mean("hardware", hardware, HARDWARE)
    avail = availability() if available is None else available
    band = ep_band(int(ep))
    order, reasons = _preference(hw, band, avail)
    rows, rank = [], 0
    for b in order:
        ok, how = avail.get(b, (False, "not checked"))
        if ok:
            rank += 1
            evidence = ("guidance; measure it with dodoco replay" if b == "alltoall" else
                        "guidance, not measured here; dodoco replay --dispatcher deepep measures it"
                        if b == "deepep" else "guidance, not measured here")
            rows.append({"backend": b, "package": BACKENDS[b], "available": True, "rank": rank,
                         "status": "recommended" if rank == 1 else "alternative", "evidence": evidence})
        else:
            rows.append({"backend": b, "package": BACKENDS[b], "available": False, "rank": None,
                         "status": "unavailable", "evidence": f"not importable ({how} failed): environment "
                                                             "limitation, not ranked, not measured"})
    choice = next(r["backend"] for r in rows if r["rank"] == 1) if rank else None
    if choice is None:
        raise DodocoError("no dispatcher is importable here (torch is missing): install torch")
    top = order[0]
    if top != choice:
        reasons.append(f"the guidance prefers {top}, but {BACKENDS[top]} is not importable here: {choice} is "
                       f"the measured correctness fallback; install it to compare")
    if skew is not None:
        reasons.append(_skew_reason(float(skew), int(ep)))
    return {"hardware": hw, "ep": int(ep), "band": band, "skew": skew, "choice": choice, "reasons": reasons,
            "rows": rows}


def run_skew(run, N: int, B: int, seed: int = 0) -> float:
    """Mean receiver skew of a run at EP N, batch B (contiguous placement; mean over steps, layers).

    ``run.steps`` forms the steps (a window-aggregate run is one step: its whole window's loads).
    """
    import numpy as np

    from dodoco.ep import contiguous, rank_loads, receiver_skew

    steps = run.steps(N, B, seed)  # [n, L, E]
    return float(np.nanmean(receiver_skew(rank_loads(steps, contiguous(run.E, N)))))
