"""Calibrate the dispatch model on replay results and validate it on imbalanced replays.

What is fitted on what (docs/dispatch.md):

1. alpha(N) and B_eff(N): per N, ``fit_line`` on balanced data only: the raw uniform sweep at sizes
   >= ``min_bytes`` plus the balanced replay controls (dispatch and combine). On balanced traffic
   max = mean, so these points say nothing about the imbalance weight w.
2. w: on the synthetic receiver-skew controls (``dodoco replay --skew``), per N and pooled over N.
   Without skew controls, on a seeded half of the real and mock cases, and the other half validates.
3. Validation: the real and mock (imbalanced) cases not used in step 2, dispatch and combine, as
   absolute percentage errors; the naive max model (w = 1) and a volume-only model (w = 0) are
   scored beside it on the same cases.

Shape legend: N EP ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dodoco.errors import DodocoError
from dodoco.simulate.model import LinkModel, fit_line, fit_weight, max_mean, off_diagonal, predict

__all__ = ["Calibration", "calibrate", "validation_rows"]


@dataclass
class Calibration:
    """Fitted parameters: per-N link models, the pooled w, and where each number came from."""

    per_n: dict[int, LinkModel]
    w: float
    w_source: str
    spread: float
    device: str = ""
    notes: list[str] = field(default_factory=list)

    def alpha_at(self, N: int) -> float:
        """alpha (s) at N: linear in N-1 through the calibrated points (constant with one point)."""
        ns = sorted(self.per_n)
        a = [self.per_n[n].alpha for n in ns]
        if len(ns) == 1:
            return a[0]
        slope, icpt = np.polyfit(np.asarray(ns, dtype=float) - 1, a, 1)
        return float(max(0.0, icpt + slope * (N - 1)))

    def beff_at(self, N: int) -> float:
        """B_eff (bytes/s) at N: the value of the largest calibrated N <= N (else the smallest)."""
        ns = sorted(self.per_n)
        below = [n for n in ns if n <= N]
        return self.per_n[below[-1] if below else ns[0]].beff

    def to_dict(self) -> dict:
        return {"per_n": {str(n): {"alpha_us": m.alpha * 1e6, "beff_GBps": m.beff / 1e9, "w": m.w}
                          for n, m in sorted(self.per_n.items())},
                "w": self.w, "w_source": self.w_source, "w_spread": self.spread, "device": self.device,
                "notes": self.notes}


def _case_bytes(case: dict, row_bytes: int) -> np.ndarray:
    return np.asarray(case["splits"], dtype=np.float64) * row_bytes


def _balanced_points(res: dict, min_bytes: int) -> tuple[list[float], list[float]]:
    N, x, t = res["N"], [], []
    for r in res.get("sweep", []):
        if r["bytes_per_rank"] >= min_bytes:
            x.append(r["bytes_per_rank"] * (N - 1) / N)
            t.append(r["median_ms"] * 1e-3)
    for c in res["cases"]:
        if c["kind"] == "balanced":
            for phase in ("dispatch", "combine"):
                x.append(max(c["send_off_max"], c["recv_off_max"]))
                t.append(c[phase]["median_ms"] * 1e-3)
    return x, t


def _mmt(cases: list[dict], row_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(M[n], m[n], t[n]) over the dispatch and the combine (reversed traffic) of each case."""
    b = np.stack([_case_bytes(c, row_bytes) for c in cases])
    Ms, ms, ts = [], [], []
    for phase, bb in (("dispatch", b), ("combine", np.swapaxes(b, -1, -2))):
        S, R, _ = off_diagonal(bb)
        M, m = max_mean(S, R)
        Ms.append(M), ms.append(m), ts.append([c[phase]["median_ms"] * 1e-3 for c in cases])
    return np.concatenate(Ms), np.concatenate(ms), np.concatenate(ts)


def _split_half(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def calibrate(results: list[dict], min_bytes: int = 1 << 20, seed: int = 0) -> tuple[Calibration, dict]:
    """Fit per-N alpha, B_eff and w on replay results -> (Calibration, {N: validation cases}).

    results: replay result dicts (``dodoco.replay/1``), typically one per N. The returned dict maps
    N to the list of real/mock case dicts held out for validation.
    """
    if not results:
        raise DodocoError("no replay results to calibrate on: pass --calibration FILE from `dodoco replay`")
    per_n, held, notes, pooled = {}, {}, [], []
    for res in results:
        N, rb = res["N"], res["row_bytes"]
        x, t = _balanced_points(res, min_bytes)
        if len(x) < 2:
            raise DodocoError(f"replay result at N={N} has {len(x)} balanced points >= {min_bytes} bytes: "
                              "replay with --sweep (and balanced controls) to calibrate")
        alpha, beff = fit_line(x, t)
        skew = [c for c in res["cases"] if c["kind"] == "skew"]
        imb = [c for c in res["cases"] if c["kind"] in ("real", "mock")]
        if len(skew) >= 2:
            fit_set, held[N] = skew, imb
            src = "synthetic receiver-skew controls"
        else:
            i_fit, i_val = _split_half(len(imb), seed)
            fit_set, held[N] = [imb[i] for i in i_fit], [imb[i] for i in i_val]
            src = "a seeded half of the real/mock cases (the other half validates)"
        w, spread = 1.0, 0.0
        if fit_set:
            M, m, tt = _mmt(fit_set, rb)
            w, spread = fit_weight(M, m, tt, alpha, beff)
            pooled.append((M, m, tt, np.full_like(tt, alpha), np.full_like(tt, beff)))
        per_n[N] = LinkModel(alpha, beff, w)
        notes.append(f"N={N}: alpha, B_eff from {len(x)} balanced points (sweep >= {min_bytes} B and balanced "
                     f"replays); w={w:.3f} (spread {spread:.3f}) from {len(fit_set)} {src}")
    if pooled:
        w_all, sp = fit_weight(*(np.concatenate([p[k] for p in pooled]) for k in range(5)))
    else:
        w_all, sp = 1.0, 0.0
    notes.append(f"pooled w={w_all:.3f} (spread {sp:.3f}), used for N outside the calibrated ones")
    device = next((r["device"].get("name", "") for r in results), "")
    return Calibration(per_n, w_all, "pooled over the per-N fit sets", sp, device, notes), held


def _loo_skew(res: dict, m: LinkModel) -> list[dict]:
    """Skew controls predicted with w fitted on the other skew controls of the same N (leave one out)."""
    skew = [c for c in res["cases"] if c["kind"] == "skew"]
    out = []
    for i, c in enumerate(skew):
        rest = skew[:i] + skew[i + 1:]
        if len(rest) < 2:
            return []
        w, _ = fit_weight(*_mmt(rest, res["row_bytes"]), m.alpha, m.beff)
        out.append((c, LinkModel(m.alpha, m.beff, w, m.pair_bw)))
    return out


def _errors(cases_models: list, rb: int) -> tuple[dict, list, list]:
    """Abs % errors of (case, model) pairs for the model, naive max (w=1), volume-only (w=0)."""
    errs = {k: [] for k in ("model", "naive_max", "volume_only")}
    meas, pred = [], []
    for c, m in cases_models:
        for phase in ("dispatch", "combine"):
            b = _case_bytes(c, rb)
            b = b.T if phase == "combine" else b
            t = c[phase]["median_ms"] * 1e-3
            for key, w in (("model", m.w), ("naive_max", 1.0), ("volume_only", 0.0)):
                p = float(predict(b, LinkModel(m.alpha, m.beff, w, m.pair_bw)))
                errs[key].append(100.0 * abs(p - t) / t)
                if key == "model":
                    pred.append(p)
                    meas.append(t)
    return errs, meas, pred


def validation_rows(cal: Calibration, results: list[dict], held: dict) -> list[dict]:
    """Per N and case group: median absolute % error of the model, the naive max model (w = 1) and a
    volume-only model (w = 0). Groups: skew controls in-sample (they fit w) and leave-one-out (w
    refitted without the predicted control), real and mock held out, balanced (calibration data)."""
    rows = []
    for res in results:
        N, rb, m = res["N"], res["row_bytes"], cal.per_n[res["N"]]
        groups = {"skew (fit set)": [(c, m) for c in res["cases"] if c["kind"] == "skew"],
                  "skew (leave-one-out)": _loo_skew(res, m)}
        for kind in ("real", "mock"):
            groups[f"{kind} (held out)"] = [(c, m) for c in held.get(N, []) if c["kind"] == kind]
        groups["balanced (calibration)"] = [(c, m) for c in res["cases"] if c["kind"] == "balanced"]
        for name, pairs in groups.items():
            if not pairs:
                continue
            errs, meas, pred = _errors(pairs, rb)
            rows.append({"N": N, "cases": name, "n": len(pairs),
                         "recv_skew": float(np.mean([c["receiver_skew"] for c, _ in pairs])),
                         "measured_ms": 1e3 * float(np.mean(meas)), "predicted_ms": 1e3 * float(np.mean(pred)),
                         "err_pct_median": float(np.median(errs["model"])),
                         "naive_max_err_pct": float(np.median(errs["naive_max"])),
                         "volume_only_err_pct": float(np.median(errs["volume_only"]))})
    return rows
