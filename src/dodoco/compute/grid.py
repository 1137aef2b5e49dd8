"""The calibration grid of the compute model: synthetic per-rank expert loads, pure numpy.

One rank of G experts (1 to 64) per case, in four families, each case capped at ``max_tokens``:

- equal: every expert t tokens, t in 1, 4, 16, ..., 16384 (the equal-groups table of old);
- skewed: T tokens over G experts drawn from a Zipf law of exponent 0.8 or 1.5 (hot experts);
- empty: T tokens over a random half or quarter of the G experts, the rest empty;
- dirichlet: T log-uniform in [16, max_tokens], G random, shares from a Dirichlet of random
  concentration (anything in between).

Real routing is never in the grid: the model is validated on real routing it was not fitted on.
Shape legend: G experts per rank, T tokens on the rank.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXPERTS", "TOKENS", "calibration_grid"]

EXPERTS = (1, 2, 4, 8, 16, 32, 64)
TOKENS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
TOTALS = (128, 512, 2048, 8192, 32768)


def _multinomial(rng, T: int, p) -> np.ndarray:
    return rng.multinomial(int(T), np.asarray(p, dtype=np.float64) / np.sum(p)).astype(np.int64)


def calibration_grid(max_tokens: int = 65536, random_cases: int = 48, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """[(family, loads int64 [G])]: the grid's ranks, in a fixed order for a given seed."""
    rng = np.random.default_rng(seed)
    out = []
    for G in EXPERTS:
        out += [("equal", np.full(G, t, dtype=np.int64)) for t in TOKENS if t * G <= max_tokens]
        for T in TOTALS:
            if T > max_tokens or (G == 1 and T != TOTALS[0]):
                continue
            for a in (0.8, 1.5):
                out.append(("skewed", rng.permutation(_multinomial(rng, T, np.arange(1, G + 1) ** -a))))
            if G >= 4 and T <= 8192:
                for frac in (0.5, 0.25):
                    keep = rng.permutation(G) < max(1, int(G * frac))
                    out.append(("empty", _multinomial(rng, T, keep.astype(float))))
    for _ in range(random_cases):
        G = int(rng.choice(EXPERTS))
        T = int(np.exp(rng.uniform(np.log(16), np.log(max_tokens))))
        out.append(("dirichlet", _multinomial(rng, T, rng.dirichlet(np.full(G, np.exp(rng.uniform(-1.5, 1.5)))))))
    return out
