"""Cross-layer expert affinity: how much a token's experts in layer l say about layer l+1.

From the transition counts ``across[l, a, b]`` (tokens that chose a in layer l and b in layer l+1;
``dodoco.ep.coactivation.count_pairs``; each token contributes its K x K pairs) DODOCO forms the
joint distribution p(a, b) = across / sum(across), its marginals p(a), p(b), and per layer pair:

    I    = sum_ab p(a, b) log2(p(a, b) / (p(a) p(b)))        mutual information, bits
    H    = -sum_b p(b) log2 p(b)                             next-layer entropy
    H|   = H - I                                             conditional entropy H(b | a)
    uncertainty_coef = I / H                                 Theil's uncertainty coefficient U(b|a):
                                                             the share of the next layer's entropy
                                                             that the current expert removes (not a
                                                             normalised MI, which is symmetric)
    top1 = K sum_a p(a) max_b p(b | a)                       hit rate of the best single guess: the
                                                             chance that the most likely next expert
                                                             given a is among the token's K experts
                                                             of layer l+1 (a token holding a holds
                                                             b* in across[a, b*] of its row's
                                                             across[a].sum() / K tokens)
    top20 = sum_a p(a) (mass of the top ceil(E/5) b in p(b | a))   share of a token's next-layer
                                                             experts among the 20% most likely

each beside its value under independence (top1_indep = K max_b p(b): the chance that the most
popular next expert is among a token's K; top20_indep from p(b); and I of a token-shuffled
control, ``mi_shuffled``: the same counts with layer l+1 taken from a random permutation of the
tokens, which keeps the marginals and cuts the link; its I is what finite samples give without
any affinity). docs/beyond-counts.md.

Shape legend: T tokens, L MoE layers, E routed experts, K experts per token.
"""

from __future__ import annotations

import numpy as np

from dodoco.ep.coactivation import PairCounts, count_pairs
from dodoco.errors import DodocoError

__all__ = ["affinity_rows", "conditional", "joint_information", "shuffled_counts", "top_mass"]

_LN2 = np.log(2.0)


def joint_information(joint) -> dict[str, np.ndarray]:
    """Information of joint counts[..., E, E] (rows: layer l, columns: layer l+1) ->
    {"mi", "h_next", "h_cond" in bits, "uncertainty_coef" = mi / h_next}: float64 [...] (0 log 0 = 0;
    NaN for no counts)."""
    j = np.asarray(joint, dtype=np.float64)
    tot = j.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = j / tot
        pa = p.sum(axis=-1, keepdims=True)
        pb = p.sum(axis=-2, keepdims=True)
        mi = (p * np.log(np.where(p > 0, p / (pa * pb), 1.0))).sum(axis=(-2, -1)) / _LN2
        h = -(pb * np.log(np.where(pb > 0, pb, 1.0))).sum(axis=(-2, -1)) / _LN2
        mi = np.maximum(mi, 0.0)  # rounding can leave -1e-16
        u = np.where(h > 0, mi / h, np.nan)
    bad = tot[..., 0, 0] <= 0
    out = {"mi": mi, "h_next": h, "h_cond": h - mi, "uncertainty_coef": u}
    return {k: np.where(bad, np.nan, v) for k, v in out.items()}


def conditional(joint) -> np.ndarray:
    """p(b | a) of joint counts[..., E, E] -> float64 [..., E, E]; rows of unused a are 0."""
    j = np.asarray(joint, dtype=np.float64)
    rows = j.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(rows > 0, j / rows, 0.0)


def top_mass(joint, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Mass of the m most likely next experts: joint[..., E, E] -> (given a, independent).

    given a: sum_a p(a) (sum of the m largest p(b | a)); independent: sum of the m largest p(b).
    m = 1 is the best single guess of the next expert.
    """
    j = np.asarray(joint, dtype=np.float64)
    tot = j.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        given = np.sort(j, axis=-1)[..., -m:].sum(axis=(-2, -1)) / tot
        pb = j.sum(axis=-2) / tot[..., None]
    return given, np.sort(pb, axis=-1)[..., -m:].sum(axis=-1)


def affinity_rows(pc: PairCounts, shuffled: PairCounts | None = None) -> list[dict]:
    """One dict per consecutive layer pair (layer = l, next = l+1) from PairCounts with ``across``.

    Columns: mi, h_next, h_cond (bits), uncertainty_coef, top1, top1_indep (hit rates of K
    experts), top20, top20_indep (see the module docstring), and mi_shuffled /
    uncertainty_coef_shuffled when ``shuffled`` (count_pairs with permute_seed) is given.
    """
    if pc.across is None:
        raise DodocoError(
            "cross-layer affinity needs at least 2 MoE layers and transition counts: count_pairs(across=True)"
        )
    info = joint_information(pc.across)
    t1, t1i = top_mass(pc.across, 1)
    m20 = max(1, -(-pc.E // 5))
    t20, t20i = top_mass(pc.across, m20)
    sh = joint_information(shuffled.across) if shuffled is not None else None
    rows = []
    for l in range(pc.across.shape[0]):
        row = {
            "layer": l,
            "next": l + 1,
            **{k: float(v[l]) for k, v in info.items()},
            "top1": float(pc.K * t1[l]),
            "top1_indep": float(pc.K * t1i[l]),
            "top20": float(t20[l]),
            "top20_indep": float(t20i[l]),
        }
        if sh is not None:
            row["mi_shuffled"] = float(sh["mi"][l])
            row["uncertainty_coef_shuffled"] = float(sh["uncertainty_coef"][l])
        rows.append(row)
    return rows


def shuffled_counts(topk, E: int, seed: int = 0) -> PairCounts:
    """Transition counts of the token-shuffled control (count_pairs with permute_seed)."""
    return count_pairs(topk, E, within=False, across=True, permute_seed=seed)
