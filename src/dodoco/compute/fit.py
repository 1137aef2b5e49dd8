"""Forms of the expert-compute model, their fit and their selection by held-out error: pure numpy.

A form predicts one rank's expert time (ms) from its features (``dodoco.compute.features``):

    time = sum_i a_i x_i  +  sum_j max_m (b_m z_jm)          a, b >= 0

x_i are case features (a launch constant, non-empty experts, activation bytes, ...); the max terms
are a roofline per instance j of the form's scope: the whole rank ("case"), each of the two GEMMs
("gemm"), or each expert's GEMMs ("group", what a per-expert loop runs), each instance bound by
the largest of its alternatives (weight bytes at a bandwidth, tile-padded FLOPs at a peak, waves of
tiles at a latency). Fitting minimises the squared relative error: non-negative least squares for a
fixed assignment of instances to their binding alternative, re-assigned until stable, from several
starts. ``select`` compares forms and tile sizes by k-fold held-out error; docs/compute.md.

Shape legend: R ranks (cases), J instances of a max term, M alternatives, P coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dodoco.compute.features import Features

__all__ = ["FORMS", "Form", "errors", "fit_form", "kfold_errors", "nnls", "predict_form"]


@dataclass(frozen=True)
class Form:
    """A model form: linear case features and one family of max terms (scope, alternatives)."""

    name: str
    linear: tuple[str, ...]
    scope: str | None = None  # "case", "gemm" or "group"
    alternatives: tuple[str, ...] = ()
    tiled: bool = True  # depends on the tile size (pflops, waves)
    summary: str = ""

    @property
    def params(self) -> list[str]:
        return [*self.linear, *(f"max:{m}" for m in self.alternatives)]


# fmt: off
#: name, linear case features, scope of the max terms, their alternatives, depends on the tile size, summary
_FORMS = (
    ("tokens", ("one", "flops"), None, (), False,
     "a constant plus the rank's FLOPs (tokens only): the baseline every other form must beat"),
    ("linear", ("one", "nonempty", "wbytes", "pflops", "abytes"), None, (), True,
     "launch, per non-empty expert, weight bytes, tile-padded FLOPs, activation bytes, added"),
    ("tiles", ("one", "nonempty", "wbytes", "abytes", "pflops64", "pflops128", "pflops256"), None, (), False,
     "linear, with FLOPs padded at each tile height a kernel may pick (64, 128, 256 rows) weighed"),
    ("torch-tiles", ("small", "large", "nonempty", "wbytes", "abytes", "pflops_small", "pflops_large",
                     "waves_small", "waves_large"), None, (), False,
     "the tile torch._grouped_mm picks (64x128 at <= 128 mean rows per group, else 128x256; each expert's "
     "row tiles in clusters of two): per regime a launch constant, padded FLOPs and waves of tiles; weight "
     "and activation bytes"),
    ("roofline", ("one", "nonempty"), "case", ("wbytes", "pflops"), True,
     "launch and per-expert costs plus the rank's roofline: max(weight bytes, padded FLOPs)"),
    ("gemm-roofline", ("one", "nonempty", "abytes"), "gemm", ("wbytes", "pflops"), True,
     "each of the two grouped GEMMs at its own roofline, plus launch, per-expert and activation costs"),
    ("gemm-waves", ("one", "nonempty", "abytes"), "gemm", ("wbytes", "pflops", "waves"), True,
     "gemm-roofline with a third bound: full waves of tiles over the SMs (latency of small GEMMs)"),
    ("group-roofline", ("one", "nonempty"), "group", ("wbytes", "pflops"), True,
     "every expert's GEMMs at their own roofline, summed (what a per-expert loop runs)"),
    ("group-launch", ("one",), "group", ("wbytes", "pflops", "one"), True,
     "group-roofline where each GEMM also waits for its own launch (a host-bound loop)"),
)
# fmt: on
FORMS = {row[0]: Form(*row) for row in _FORMS}


def nnls(A: np.ndarray, b: np.ndarray, iters: int = 200) -> np.ndarray:
    """Non-negative least squares (Lawson-Hanson): argmin ||A x - b|| with x >= 0; A[n, P], b[n] -> x[P]."""
    n, P = A.shape
    x, passive = np.zeros(P), np.zeros(P, dtype=bool)
    for _ in range(iters):
        w = A.T @ (b - A @ x)
        cand = ~passive & (w > 1e-12 * max(1.0, float(np.abs(w).max(initial=0.0))))
        if not cand.any():
            break
        passive[int(np.argmax(np.where(cand, w, -np.inf)))] = True
        while True:
            z = np.zeros(P)
            z[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
    return x


def _terms(form: Form, F: Features) -> tuple[np.ndarray, np.ndarray | None]:
    """(X[R, len(linear)], Z[R, J, M] or None) of a form."""
    X = np.stack([F.case[k] for k in form.linear], -1)
    if form.scope is None:
        return X, None
    if form.scope == "case":
        return X, np.stack([F.case[m] for m in form.alternatives], -1)[:, None, :]
    src = F.gemm if form.scope == "gemm" else F.group
    return X, np.stack([src[m] for m in form.alternatives], -1)


def predict_form(form: Form, F: Features, coef: np.ndarray) -> np.ndarray:
    """Predicted ms of every case -> [R]; coef[P] in ``form.params`` order."""
    X, Z = _terms(form, F)
    y = X @ coef[: X.shape[1]]
    if Z is not None:
        y = y + (Z * coef[X.shape[1] :]).max(-1).sum(-1)
    return y


def _design(X, Z, regime) -> np.ndarray:
    """[X, D]: D[:, m] sums the instances bound by alternative m."""
    D = (Z * (regime[..., None] == np.arange(Z.shape[-1]))).sum(1)
    return np.concatenate([X, D], -1)


def _fit_regimes(X, Z, y, b0, iters: int) -> tuple[np.ndarray, float]:
    w = 1.0 / y
    regime = np.argmax(Z * b0, -1)
    coef = None
    for _ in range(iters):
        A = _design(X, Z, regime)
        coef = nnls(A * w[:, None], np.ones_like(y))
        nxt = np.argmax(Z * coef[X.shape[1] :], -1)
        if np.array_equal(nxt, regime):
            break
        regime = nxt
    pred = X @ coef[: X.shape[1]] + (Z * coef[X.shape[1] :]).max(-1).sum(-1)
    return coef, float(np.sum(((pred - y) * w) ** 2))


def fit_form(form: Form, F: Features, y, iters: int = 40) -> np.ndarray:
    """Coefficients [P] of a form fitted to measured ms y[R] (minimum squared relative error)."""
    y = np.asarray(y, dtype=np.float64)
    X, Z = _terms(form, F)
    if Z is None:
        return nnls(X / y[:, None], np.ones_like(y))
    M = Z.shape[-1]
    scale = 1.0 / np.maximum(Z.reshape(-1, M).max(0), 1e-30)
    starts = [np.eye(M)[m] * scale * 10 + scale for m in range(M)] + [scale]
    best = min((_fit_regimes(X, Z, y, b0, iters) for b0 in starts), key=lambda r: r[1])
    return best[0]


def errors(pred, y) -> np.ndarray:
    """Relative errors (pred - y) / y -> [R]."""
    return (np.asarray(pred, float) - np.asarray(y, float)) / np.asarray(y, float)


def kfold_errors(form: Form, F: Features, y, folds: int = 5, seed: int = 0, groups=None) -> np.ndarray:
    """Held-out relative errors [R]: each case predicted by the form fitted without its fold.
    groups[R] (optional): cases of one group always share a fold."""
    y = np.asarray(y, dtype=np.float64)
    R = y.shape[0]
    keys = np.arange(R) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    perm = np.random.default_rng(seed).permutation(int(keys.max()) + 1)
    fold = perm[keys] % folds
    out = np.empty(R)
    for k in range(folds):
        test = fold == k
        if not test.any() or test.all():
            continue
        coef = fit_form(form, _subset(F, ~test), y[~test])
        out[test] = errors(predict_form(form, _subset(F, test), coef), y[test])
    return out


def _subset(F: Features, m) -> Features:
    return Features(
        {k: v[m] for k, v in F.case.items()},
        {k: v[m] for k, v in F.gemm.items()},
        {k: v[m] for k, v in F.group.items()},
    )
