"""Dispatcher advice for a hardware and EP degree: from replay measurements first, rules only where none.

Evidence, in order:

1. **Measured**: replay results (``dodoco.replay/2``) taken on the named hardware (H100 and H200
   count as one: the same Hopper NVLink4 fabric, said in the reasons) at the named EP. Each
   dispatcher measured there is ranked by its mean dispatch + combine time over the cases of the
   user's routing (kind ``real``; ``mock`` when no real case was replayed), with the margin to the
   fastest, the ratio to the raw all_to_all_single floor (``nccl``: listed as the reference, never
   ranked), the receiver skew and the per-rank message size of those cases. Dispatchers the replay
   could not run are listed with its reason and never ranked. A gloo dry run is not a measurement.
2. **Rules** (NVIDIA's perf-moe-dispatcher-selection guidance, ../shared/seeds): only where nothing
   was measured at that EP on that hardware, labelled as rules. By hardware: H100/H200 DeepEP, B200
   DeepEP (HybridEP where the platform has it), GB200/GB300 NVL72 HybridEP, unknown ``alltoall``
   (Megatron's alltoall dispatcher); by EP: small (<= 8, one NVLink node) the choice is
   second-order, start with alltoall; medium (9..64) DeepEP often pays; large (> 64) HybridEP on
   NVL72. The rules need the package on the target machine; whether it imports on the machine
   running ``recommend`` says nothing about the target, so it is not checked.

The measured receiver skew does not change the rules' order: every dispatcher delivers the same
tokens to the same ranks; a high skew is a placement problem (EPLB), and the advice says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dodoco.config import Config
from dodoco.errors import DodocoError, did_you_mean

__all__ = [
    "FLOOR",
    "HARDWARE",
    "RULE_DISPATCHERS",
    "RecommendConfig",
    "advise",
    "ep_band",
    "hardware_of",
    "measured_rows",
    "recommend",
    "rules",
    "run_skew",
]

HARDWARE = {
    "h100": "hopper",
    "h200": "hopper",
    "b200": "blackwell",
    "gb200": "nvl72",
    "gb300": "nvl72",
    "unknown": "unknown",
}
#: Dispatchers the rules speak of -> what they are (``alltoall`` is Megatron's alltoall dispatcher).
FLOOR = "nccl"  # raw all_to_all_single: the reference every dispatcher is compared with, not a choice
RULE_DISPATCHERS = {
    "megatron": "Megatron-Core alltoall dispatcher ('alltoall' in the guidance)",
    "deepep": "DeepEP (deep_ep)",
    "hybridep": "HybridEP (DeepEP hybrid-ep branch)",
}


def ep_band(N: int) -> str:
    if N < 1:
        raise DodocoError(f"--ep {N}: the EP degree must be >= 1")
    return "small" if N <= 8 else ("medium" if N <= 64 else "large")


def hardware_of(device_name: str) -> str | None:
    """The hardware key of a GPU name ('NVIDIA H200' -> 'h200'), None when not one of HARDWARE."""
    name = (device_name or "").upper().replace(" ", "")
    for key in ("GB300", "GB200", "B200", "H200", "H100"):
        if key in name:
            return key.lower()
    return None


def rules(hardware: str, band: str) -> tuple[list[str], list[str]]:
    """The guidance's order of RULE_DISPATCHERS for a hardware and EP band, with its reasons."""
    cls = HARDWARE[hardware]
    if cls == "unknown":
        return ["megatron", "deepep", "hybridep"], [
            "unknown hardware / first bring-up: alltoall (Megatron's "
            "dispatcher) is the easiest path for correctness and debugging"
        ]
    if cls == "hopper":
        order, why = (
            ["deepep", "megatron", "hybridep"],
            [f"{hardware.upper()} (Hopper): DeepEP is the strong default, above all for cross-node EP"],
        )
    elif cls == "blackwell":
        order, why = (
            ["deepep", "hybridep", "megatron"],
            ["B200: DeepEP is a good first choice, HybridEP where the platform has a HybridEP path"],
        )
    else:
        order, why = (
            ["hybridep", "deepep", "megatron"],
            [f"{hardware.upper()} NVL72: HybridEP fits the NVLink domain and uses less memory"],
        )
    if band == "small":
        order = ["megatron"] + [b for b in order if b != "megatron"]
        why.append("small EP: the dispatcher choice is usually second-order; start with alltoall")
    elif band == "medium":
        why.append("medium EP: DeepEP often becomes worthwhile once EP communication is visible")
    else:
        why.append(
            "large EP: HybridEP is usually the best target on NVL72 systems; the choice matters more as EP grows"
        )
    return order, why


def _applies(result: dict, hardware: str) -> tuple[bool, str]:
    """Whether a replay result is evidence for the named hardware, and why (one phrase)."""
    if result.get("backend") != "nccl" or "perf_counter" in str(result.get("timing", "")):
        return False, "a CPU dry run (gloo): its times are not measurements"
    name = result.get("device", {}).get("name", "")
    hw = hardware_of(name)
    if hw == hardware:
        return True, f"measured on {name}"
    if hw and HARDWARE.get(hw) == HARDWARE.get(hardware) == "hopper":
        return True, f"measured on {name}, the same Hopper NVLink4 fabric as {hardware.upper()}"
    return False, f"measured on {name or 'an unnamed device'}, not {hardware.upper()}"


def measured_rows(results: list[dict], hardware: str, ep: int) -> tuple[list[dict], dict | None, dict, list[str]]:
    """(ranked dispatchers measured at EP ep on the hardware, the raw all_to_all_single floor or None,
    {name: reason not measured}, notes). The floor (``nccl``) is a reference, never ranked: no MoE
    framework dispatches with pre-sorted rows and host-known splits."""
    per, not_measured, notes = {}, {}, []
    for res in results:
        ok, why = _applies(res, hardware)
        if not ok or int(res["N"]) != int(ep):
            notes.append(f"replay at N={res['N']} ignored: " + (why if not ok else f"not EP {ep}"))
            continue
        notes.append(f"replay at N={ep}: {why}")
        for name, st in res.get("dispatchers", {}).items():
            if st.get("status") != "measured":
                not_measured.setdefault(name, st.get("reason") or "not measured")
        rows = res["rows"]
        kind = "real" if any(r["kind"] == "real" for r in rows) else "mock"
        for r in (r for r in rows if r["kind"] == kind):
            per.setdefault(r["dispatcher"], []).append(r)
    stats = {}
    for name, rs in per.items():
        t = [r["dispatch"]["median_ms"] + r["combine"]["median_ms"] for r in rs]
        stats[name] = {
            "dispatcher": name,
            "ms": float(np.mean(t)),
            "dispatch_ms": float(np.mean([r["dispatch"]["median_ms"] for r in rs])),
            "skew": float(np.mean([r["receiver_skew"] for r in rs])),
            "MB_per_rank": float(np.mean([r["per_rank_bytes"] for r in rs])) / 1e6,
            "cases": len(rs),
            "kind": rs[0]["kind"],
        }
        not_measured.pop(name, None)
    floor = stats.pop(FLOOR, None)
    out = sorted(stats.values(), key=lambda r: r["ms"])
    for i, r in enumerate(out):
        r["rank"] = i + 1
        r["margin"] = (
            "fastest" if i == 0 else f"+{100 * (r['ms'] / out[0]['ms'] - 1):.0f}% ({r['ms'] / out[0]['ms']:.2f}x)"
        )
        r["vs_floor"] = r["ms"] / floor["ms"] if floor else None
    return out, floor, not_measured, notes


def _skew_reason(skew: float, N: int) -> str:
    if skew >= 1.5:
        return (
            f"receiver skew {skew:.2f} at EP {N}: the busiest rank receives {skew:.2f}x the mean whatever the "
            "dispatcher (DeepEP/HybridEP send one copy per destination rank: fewer bytes, same skew): rebalance "
            "the placement first (dodoco analyze --placement eplb)"
        )
    if skew >= 1.15:
        return f"receiver skew {skew:.2f} at EP {N}: moderate; the dispatcher does not remove it, an EPLB placement can"
    return f"receiver skew {skew:.2f} at EP {N}: near balanced, dispatcher gains come from the kernels"


def _evidence_rows(measured: list[dict], floor: dict | None) -> list[dict]:
    """The measured dispatchers in rank order, then the raw all_to_all_single floor (a reference)."""
    rows = []
    for r in measured:
        vs = f", {r['vs_floor']:.2f}x the raw all_to_all_single" if r["vs_floor"] else ""
        rows.append(
            {
                "dispatcher": r["dispatcher"],
                "rank": r["rank"],
                "status": "measured",
                "evidence": f"{r['ms']:.3f} ms dispatch + combine, {r['margin']}{vs}, over {r['cases']} "
                f"{r['kind']} cases, receiver skew {r['skew']:.2f}, {r['MB_per_rank']:.1f} MB per rank",
            }
        )
    if floor:
        rows.append(
            {
                "dispatcher": FLOOR,
                "rank": "-",
                "status": "floor",
                "evidence": f"{floor['ms']:.3f} ms: raw all_to_all_single of pre-sorted rows with host-known "
                "splits, the reference; not a dispatcher a framework ships",
            }
        )
    return rows


def recommend(hardware: str, ep: int, results: list[dict] | None = None, skew: float | None = None) -> dict:
    """Advice -> {"hardware", "ep", "band", "basis", "choice", "rows", "reasons"} (see the module docstring).

    rows: one per dispatcher: rank (an integer, or "-"), status ("measured", "not measured", "rules"),
    and the evidence in words.
    """
    hw = hardware.lower()
    if hw not in HARDWARE:
        raise did_you_mean("hardware", hardware, HARDWARE)
    if skew is not None and not 1 <= skew < float("inf"):
        raise DodocoError(
            f"--skew {skew} is not a receiver skew: max/mean rank load is a finite number >= 1 (1 = balanced)"
        )
    band = ep_band(int(ep))
    measured, floor, not_measured, notes = measured_rows(results or [], hw, int(ep))
    order, why = rules(hw, band)
    rows, reasons = _evidence_rows(measured, floor), list(notes)
    for name, why_not in not_measured.items():
        rows.append({"dispatcher": name, "rank": "-", "status": "not measured", "evidence": why_not})
    if measured:
        basis, choice = "measured", measured[0]["dispatcher"]
        reasons.append(f"ranked by measurement at EP {ep}; the rules' order ({', '.join(order)}) is not used")
        skew = skew if skew is not None else measured[0]["skew"]
        for name in (n for n in order if n not in {r["dispatcher"] for r in rows}):
            rows.append(
                {
                    "dispatcher": name,
                    "rank": "-",
                    "status": "not measured",
                    "evidence": "not in the replay; the rules would consider it (measure it to rank it)",
                }
            )
    else:
        basis, choice = "rules", order[0]
        reasons.append(
            f"no dispatcher measured at EP {ep} on {hw.upper()}: the order below is the guidance's rules, "
            "not a measurement; it assumes each package is installed on the target machine"
        )
        reasons += why
        for i, name in enumerate(n for n in order if n not in not_measured):
            rows.append({"dispatcher": name, "rank": i + 1, "status": "rules", "evidence": RULE_DISPATCHERS[name]})
        skew = skew if skew is not None or not floor else floor["skew"]
    if skew is not None:
        reasons.append(_skew_reason(float(skew), int(ep)))
    return {
        "hardware": hw,
        "ep": int(ep),
        "band": band,
        "basis": basis,
        "choice": choice,
        "rows": rows,
        "reasons": reasons,
    }


def run_skew(run, N: int, B: int, seed: int = 0) -> float:
    """Mean receiver skew of a run at EP N, batch B (contiguous placement; mean over steps, layers).

    ``run.steps`` forms the steps (a window-aggregate run is one step: its whole window's loads).
    """
    from dodoco.ep import contiguous, rank_loads, receiver_skew

    from dodoco.ep.steps import require_steps, run_source

    src = run_source(run, seed)
    if not src.n_steps(N * B):
        require_steps(run.S, N, B, f"run {run.path}")
    steps = src.steps(N * B)  # [n, L, E]
    return float(np.nanmean(receiver_skew(rank_loads(steps, contiguous(run.E, N)))))


@dataclass(frozen=True, kw_only=True)
class RecommendConfig(Config):
    """``dodoco recommend`` (flags and TOML keys alike): hardware, EP degree, replay result files, and
    the receiver skew given (``skew``) or measured from a run directory (``run`` at ``batch``)."""

    hardware: str
    ep: int
    replay: tuple[str, ...] = ()
    skew: float | None = None
    run: str | None = None
    batch: int = 1
    seed: int = 0
    json: str | None = None
    out: str | None = None

    def __post_init__(self):
        if self.skew is not None and self.run is not None:
            raise DodocoError("--skew and --run both give the receiver skew: give one")
        if self.batch < 1:
            raise DodocoError(f"--batch {self.batch} must be >= 1 (sequences per rank per step)")


def advise(cfg: RecommendConfig) -> dict:
    """``recommend`` for a config: the replay files read, the skew measured from ``cfg.run`` if given."""
    results = None
    if cfg.replay:
        from dodoco.replay.results import load_results

        results = load_results(cfg.replay)
    skew = cfg.skew
    if cfg.run:
        from dodoco.store import open_run

        skew = run_skew(open_run(cfg.run), cfg.ep, cfg.batch, cfg.seed)
    return recommend(cfg.hardware, cfg.ep, results, skew)
