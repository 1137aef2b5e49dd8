"""Fit every model form per (machine, N, dispatcher, phase) and choose one by held-out error.

Per sample group (``dodoco.simulate.samples.Group``), using only samples of role ``fit``:

1. the balanced curve (``forms.fit_balanced``) from the balanced fit samples (M <= 1.001 m);
2. every form's parameters on the imbalanced fit samples: per calibrated size (knot) for the
   ``per_size`` forms, once for the others (``fit_form``);
3. held-out grid error of each form: 5-fold cross-validation over the imbalanced fit samples and,
   with two sizes or more, leave-one-size-out (the size's samples predicted from the other sizes);
4. the error of each form, fitted on all fit samples, on the routing samples of role ``select``;
5. the choice: the candidate form with the smallest mean of the two median absolute % errors
   (fewer parameters win ties). Samples of role ``validate`` are never read here.

``calibrate(groups, sources)`` returns the ``Calibration`` (chosen fit per group) and a report of
every form's scores. Shape legend: N EP ranks.
"""

from __future__ import annotations

import hashlib

import numpy as np

from dodoco.errors import DodocoError
from dodoco.simulate.calibration import Calibration, Fit
from dodoco.simulate.forms import BASELINES, CANDIDATES, FORMS, feats, fit_balanced, fit_params
from dodoco.simulate.samples import Group

__all__ = ["calibrate", "fit_form", "fit_group", "imbalanced", "pct_errors"]

KNOT_TOL = 0.1  # log2 sizes within this of each other are one calibrated size
FOLDS = 5


def pct_errors(pred, t) -> np.ndarray:
    """Absolute percentage errors |pred - t| / t * 100 -> [n]."""
    t = np.asarray(t, dtype=np.float64)
    return 100.0 * np.abs(np.asarray(pred, dtype=np.float64) - t) / t


def imbalanced(g: Group, tol: float = 1e-3) -> np.ndarray:
    """Mask [n]: samples whose busiest rank moves more than the mean (M > (1 + tol) m)."""
    f = feats(g.b)
    return f.M > (1.0 + tol) * f.m


def _knots(lx: np.ndarray) -> np.ndarray:
    """Calibrated sizes: log2 sizes merged when within KNOT_TOL -> sorted [k]."""
    out = []
    for v in np.sort(lx):
        if not out or v - out[-1][-1] > KNOT_TOL:
            out.append([v])
        else:
            out[-1].append(v)
    return np.array([float(np.mean(c)) for c in out])


def fit_form(name: str, g: Group, bal) -> tuple[np.ndarray, np.ndarray]:
    """(knots [k] log2 bytes, theta [k, P]) of form ``name`` on group g's samples (all of them)."""
    form = FORMS[name]
    f = feats(g.b)
    lx = np.log2(f.x)
    if not form.params or g.t.size == 0:
        return np.array([float(np.median(lx)) if lx.size else 27.0]), np.zeros((1, len(form.params)))
    if not form.per_size:
        return np.array([float(np.median(lx))]), fit_params(form, f, bal, g.t)[None, :]
    knots = _knots(lx)
    theta = []
    for k in knots:
        sel = np.abs(lx - k) <= KNOT_TOL
        theta.append(fit_params(form, feats(g.b[sel]), bal, g.t[sel]))
    return knots, np.stack(theta)


def _fit_of(g: Group, name: str, bal, knots, theta, info=None) -> Fit:
    return Fit(g.machine, g.device, g.N, g.dispatcher, g.phase, name, bal, knots, theta, info or {})


def _heldout(name: str, imb: Group, bal) -> np.ndarray:
    """Abs % errors of form ``name`` on imbalanced fit samples, each predicted without itself
    (5-fold) and, with >= 2 sizes, each size predicted from the others."""
    n = imb.t.size
    if n < 2:
        return np.array([])
    order = np.lexsort((np.arange(n), np.log2(feats(imb.b).x)))  # by size, ties in sample order
    fold = np.empty(n, dtype=int)
    fold[order] = np.arange(n) % min(FOLDS, n)
    errs = []
    for k in range(min(FOLDS, n)):
        train, test = imb.where(fold != k), imb.where(fold == k)
        fit = _fit_of(imb, name, bal, *fit_form(name, train, bal))
        errs.append(pct_errors(fit.predict(test.b), test.t))
    lx = np.log2(feats(imb.b).x)
    knots = _knots(lx)
    if len(knots) >= 2:
        for k in knots:
            out = np.abs(lx - k) <= KNOT_TOL
            fit = _fit_of(imb, name, bal, *fit_form(name, imb.where(~out), bal))
            errs.append(pct_errors(fit.predict(imb.b[out]), imb.t[out]))
    return np.concatenate(errs)


def _median(x) -> float | None:
    return float(np.median(x)) if len(x) else None


def _score(grid_err, select_err) -> float:
    parts = [v for v in (_median(grid_err), _median(select_err)) if v is not None]
    return float(np.mean(parts)) if parts else float("inf")


def _fit_ids_sha(ids) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def fit_group(g: Group) -> tuple[dict, dict]:
    """Fit every form on group g's ``fit`` samples -> ({form: Fit}, selection record)."""
    fitset = g.of_role("fit")
    imb_mask = imbalanced(fitset)
    bal_set = fitset.where(~imb_mask)
    fb = feats(bal_set.b)
    bal = fit_balanced(fb.m, bal_set.t)
    imb = fitset.where(imb_mask)
    sel = g.of_role("select")
    fits, scores = {}, {}
    for name in CANDIDATES + BASELINES:
        knots, theta = fit_form(name, imb, bal)
        fits[name] = _fit_of(g, name, bal, knots, theta)
        grid_err = _heldout(name, imb, bal) if FORMS[name].params else pct_errors(fits[name].predict(imb.b), imb.t)
        sel_err = pct_errors(fits[name].predict(sel.b), sel.t) if sel.t.size else np.array([])
        scores[name] = {
            "grid_heldout_median_pct": _median(grid_err),
            "select_median_pct": _median(sel_err),
            "score": _score(grid_err, sel_err),
            "params": len(FORMS[name].params),
        }
    if imb.t.size == 0:
        chosen, why = (
            "naive_max",
            "no imbalanced calibration samples: imbalance response not measured, naive max assumed",
        )
    else:
        chosen = min(CANDIDATES, key=lambda k: (scores[k]["score"], scores[k]["params"]))
        why = "smallest mean of held-out grid and select-routing median errors among " + ", ".join(CANDIDATES)
    record = {
        "chosen": chosen,
        "why": why,
        "scores": scores,
        "n_fit": int(fitset.t.size),
        "n_fit_balanced": int(bal_set.t.size),
        "n_fit_imbalanced": int(imb.t.size),
        "n_select": int(sel.t.size),
        "fit_ids_sha256": _fit_ids_sha(fitset.ids),
        "fit_sizes_MB": sorted({round(float(x) / 1e6, 1) for x in feats(fitset.b).x}),
    }
    return fits, record


def calibrate(groups, sources, notes=()) -> tuple[Calibration, list[dict]]:
    """Fit and choose per group -> (Calibration of the chosen fits, per-group records with every
    form's fit; groups that cannot be calibrated are recorded with the reason)."""
    chosen, records = [], []
    for g in groups:
        try:
            fits, rec = fit_group(g)
        except DodocoError as exc:
            records.append(
                {"machine": g.machine, "N": g.N, "dispatcher": g.dispatcher, "phase": g.phase, "skipped": str(exc)}
            )
            continue
        info = {
            k: rec[k]
            for k in (
                "why",
                "n_fit",
                "n_fit_balanced",
                "n_fit_imbalanced",
                "n_select",
                "fit_ids_sha256",
                "fit_sizes_MB",
            )
        }
        info["selection"] = {k: {kk: vv for kk, vv in v.items() if kk != "params"} for k, v in rec["scores"].items()}
        best = fits[rec["chosen"]]
        chosen.append(
            Fit(
                best.machine,
                best.device,
                best.N,
                best.dispatcher,
                best.phase,
                best.form,
                best.balanced,
                best.knots,
                best.theta,
                info,
            )
        )
        records.append(
            {"machine": g.machine, "N": g.N, "dispatcher": g.dispatcher, "phase": g.phase, "fits": fits, **rec}
        )
    if not chosen:
        raise DodocoError("no group could be calibrated: " + "; ".join(r["skipped"] for r in records))
    return Calibration.new(chosen, sources, notes), records
