"""NeuSim's worst-case-device expert compute, fed the parameters DODOCO exports, checked against the
busiest device of the real routing in tokens and in milliseconds (DODOCO's compute model).

NeuSim's DeepSeek path models the expert compute of the busiest device (PR "Support more MoE expert
routing load imbalance patterns"): the device holds P = ceil(E / EP) experts, W_dev = min(W, P) of
them hot with eff = T*K/E*f tokens each, and the other P - W_dev with the rest split evenly over the
E - W cold experts, rem = (T*K - W*eff) / (E - W), in real (unfloored) units. Each expert is its own
matmul op (W_dev "most_loaded", P - W_dev "remaining") whose seqlen is max(1, ceil(.)) of those; where
rem < 1 only ceil((P - W_dev) rem) remaining experts run, at 1 token each. The device holds

    tokens(f, W) = W_dev * eff + (P - W_dev) * rem,   linear in f,

``compute_params`` finds, at the chosen EP, the (f, W) with which NeuSim's device holds the busiest
device's mean tokens of the real routing and takes the same milliseconds under DODOCO's compute
model, both at once (for each W, f minimises the larger of the two relative errors; the W with the
smallest wins); at every other EP it lists the residuals of the same pair. docs/neusim.md.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks (EP),
B sequences per rank per step, W hot experts.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.simulate.neusim import worst_case_device

__all__ = ["busiest_device", "compute_params", "worst_device_loads"]


def worst_device_loads(E: int, K: int, EP: int, f: float, W: int, TK: float) -> np.ndarray:
    """NeuSim's busiest device as per-expert matmul tokens -> int64 [P], NeuSim's own seqlens: W_dev hot
    experts at max(1, ceil(eff)); the P - W_dev others at max(1, ceil(rem)) where rem >= 1, else only
    ceil((P - W_dev) * rem) of them active at 1 token (the PR's decode de-inflation), the rest 0."""
    P, Wd, eff, rem = worst_case_device(E, EP, f, int(min(max(1, W), E)), TK)
    hot = [max(1, _ceil(eff))] * Wd
    if rem >= 1.0:
        return np.array(hot + [_ceil(rem)] * (P - Wd), dtype=np.int64)
    active = min(P - Wd, _ceil(max(rem, 0.0) * (P - Wd)))
    return np.array(hot + [1] * active + [0] * (P - Wd - active), dtype=np.int64)


def _ceil(x: float) -> int:
    """ceil, blind to float noise below 1e-9 (so 255 * (7/255) is 7 active experts, not 8)."""
    return int(np.ceil(x - 1e-9))


def _tokens(E: int, EP: int, f: float, W: int, TK: float) -> float:
    """Real (unfloored) tokens of NeuSim's busiest device."""
    P, Wd, eff, rem = worst_case_device(E, EP, f, W, TK)
    return Wd * eff + (P - Wd) * rem


def busiest_device(steps, placement, model, shape) -> dict:
    """The real routing's busiest device: steps int [n, L, E] (one EP's steps), contiguous or any
    placement of one layer each -> {tokens, ms, TK}: means over steps and layers of the busiest
    device's tokens, of the compute model's busiest-device milliseconds, and of T*K (TKs: each
    step's and layer's T*K, which NeuSim's device is timed at)."""
    from dodoco.compute.cases import local_loads

    toks, ms, tk = [], [], []
    for k in range(steps.shape[0]):
        for layer in range(steps.shape[1]):
            per = local_loads(steps[k, layer], placement.layer(layer))
            t = model.predict(per, shape)
            toks.append(max(int(x.sum()) for x in per))
            ms.append(float(t.max()))
            tk.append(float(steps[k, layer].sum()))
    return {"tokens": float(np.mean(toks)), "ms": float(np.mean(ms)), "TK": float(np.mean(tk)), "TKs": tk}


def _device_ms(E: int, K: int, ep: int, f: float, W: int, b: dict, model, shape) -> float:
    """NeuSim's busiest device in ms under the compute model, averaged over the same steps and layers
    as the real busiest device (each at its own T*K: the model is not linear in tokens)."""
    loads = [worst_device_loads(E, K, ep, f, W, tk) for tk in b.get("TKs", [b["TK"]])]
    return float(np.mean(model.predict(loads, shape)))


def _best_f(E: int, K: int, ep: int, W: int, b: dict, model, shape) -> tuple[float, float]:
    """(f, max(|token error|, |ms error|)) for W hot experts: f scanned over [1, E/max(K, W)] (the hot
    experts never hold more than the step's tokens; then refined around the best), so NeuSim's device
    matches the busiest device's tokens and milliseconds at once."""

    def err(f: float) -> float:
        tok = _tokens(E, ep, f, W, b["TK"]) / b["tokens"] - 1.0
        ms = _device_ms(E, K, ep, f, W, b, model, shape) / b["ms"] - 1.0
        return max(abs(tok), abs(ms))

    top = E / max(K, W)
    grid = np.linspace(1.0, top, 161)
    f = min(grid, key=err)
    step = grid[1] - grid[0]
    fine = np.linspace(max(1.0, f - step), min(top, f + step), 81)
    f = float(min(fine, key=err))
    return f, err(f)


def compute_params(busiest: dict, E: int, K: int, ep: int, model, shape, gpu: str | None = None) -> dict:
    """(f, W) for NeuSim's worst-case device at EP ``ep`` -> {f, W, residuals per EP}; busiest: {N:
    busiest_device(...)} for every EP scanned (``ep`` among them); gpu: the GPU it stands for (its
    calibration's label says whether it is another GPU's)."""
    if ep not in busiest:
        raise DodocoError(f"EP {ep} was not scanned: choose one of {sorted(busiest)}")
    b = busiest[ep]
    best = min(((W, *_best_f(E, K, ep, W, b, model, shape)) for W in range(1, K + 1)), key=lambda x: x[2])
    W, f, _ = best
    rows = []
    for N, d in sorted(busiest.items()):
        toks = _tokens(E, N, f, W, d["TK"])
        ms = _device_ms(E, K, N, f, W, d, model, shape)
        rows.append(
            {
                "EP": N,
                "busiest_tokens": d["tokens"],
                "neusim_tokens": toks,
                "tokens_residual": toks / d["tokens"] - 1.0,
                "busiest_ms": d["ms"],
                "neusim_ms": ms,
                "ms_residual": ms / d["ms"] - 1.0,
                "fitted_here": N == ep,
            }
        )
    return {
        "expert_load_imbalance_factor": f,
        "num_worst_case_experts": W,
        "ep": ep,
        "residuals": rows,
        "compute_source": model.label(gpu, shape.act),
        "shape": shape.label(),
    }
