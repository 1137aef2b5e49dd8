"""Numbers the docs state, recomputed independently (docs/beyond-counts.md)."""

import re
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_independence_gap_stated_for_k8_e64_is_the_computed_one():
    # uniform routing, K = 8 of E = 64: the chance that a token holds a given pair (a, b) is
    # K(K-1)/(E(E-1)) by counting; T p_a p_b would say (K/E)^2. Simulated, not from the formula.
    K, E, T = 8, 64, 40_000
    rng = np.random.default_rng(0)
    topk = np.argsort(rng.random((T, E)), axis=1)[:, :K]
    X = np.zeros((T, E))
    X[np.arange(T)[:, None], topk] = 1
    pairs = X.T @ X
    observed = pairs[~np.eye(E, dtype=bool)].mean() / T
    assert abs(observed / (K * (K - 1) / (E * (E - 1))) - 1) < 0.01
    gap = 100 * (1 - (K * (K - 1) / (E * (E - 1))) / (K / E) ** 2)
    text = (DOCS / "beyond-counts.md").read_text()
    stated = float(re.search(r"([\d.]+)% lower at K=8, E=64", text).group(1))
    assert stated == round(gap, 1) == 11.1


def test_affinity_columns_are_named_for_what_they_are():
    text = (DOCS / "beyond-counts.md").read_text()
    assert "nmi" not in text and "uncertainty_coef" in text and "top1 = K" in text
