"""Surviving mutants of the core modules that cannot change a result, and why (bench_mutation.py).

Each rule is (module suffix, function, pattern of the mutated line, reason); a survivor is explained
when its module, function and added line match a rule. Every reason is a property of the code or of
numpy, checked where it is not obvious; a survivor that matches no rule is reported as unexplained.
"""

from __future__ import annotations

DTYPE_FLOAT = (
    "the values go straight into float64 arithmetic (numpy promotes integers and float32 against "
    "float64 operands), so leaving the type to numpy gives the same numbers"
)
DTYPE_INT = "numpy's default integer is int64 on this platform: the array is int64 either way"
DTYPE_DEFAULT_FLOAT = "np.zeros/np.empty/np.ones and astype(None) default to float64: the type written"
INDEX = "the array only indexes, counts or compares, which gives the same result in any integer type"
AXIS_2D = (
    "the array is two-dimensional here, so axis 1 is axis -1, and -1 is the default axis of "
    "sort/argsort/partition/take_along_axis/concatenate(0)"
)
SQUARE = "the matrix is square [N, N]: its last two axes have the same length"
RESHAPE = "numpy takes any negative length in reshape as the one inferred length, as it does -1"
EINSUM = "einsum subscripts are labels: upper and lower case name the same contraction"
DIVIDE = (
    "for non-negative loads the only zero denominator has a zero numerator: 0/0 is numpy's 'invalid', "
    "never 'divide', so the divide setting changes nothing"
)
WARNINGS = "only RuntimeWarnings arise in the block, so ignoring every category ignores the same warnings"
PARALLEL = "how rows are split over chunks or threads: every row is computed the same way"
FAST_PATH = (
    "chooses among fast paths that compute the same values (each is checked against the plain "
    "computation in tests/ep/test_*_mutants.py and tests/metrics/test_metrics_core.py): speed only"
)
WIDER = (
    "accumulates in a type at least as wide as the sums need (numpy sums 32-bit and narrower integers "
    "in 64 bits, and _acc has widened anything narrower), so the sums are the same"
)
COPY = "copy=True/None/False only decides whether numpy copies: the values are the same"
KIND_CASE = "numpy reads sort kinds case-insensitively: 'STABLE' is 'stable'"
DEGENERATE = (
    "differs only when two floats are exactly equal at the boundary (a size exactly KNOT_TOL from "
    "its knot, M exactly (1 + tol) m, a median exactly 1.02 alpha), which measured data never gives"
)
WINDOW_BOUND = (
    "a window's levels are int64 whatever its sum bound, so the bound (and how it is computed) changes nothing"
)
MASKS_LABEL = "the label of a cache key (the key's other fields keep entries apart)"

EQUIVALENT: list[tuple[str, str, str, str]] = [
    # ---- metrics.imbalance
    (
        "ep.placements",
        "plan_placement",
        r"\.fitted\) or True",
        "build_placement hands the fit only to fitted placements: a fit made for another is never read",
    ),
    (
        "ep.steps",
        "StepSource._sum_from",
        r"x\[:, 1 : 3 \* n : 2\]",
        "x has at most 2n + 1 columns here, so the slice 1:3n:2 stops at the same last odd column as 1:2n:2",
    ),
    (
        "metrics.schema",
        "tidy_table",
        r"dtype=None,|^-dtype=object if f\.type",
        "numpy infers int64 for the integer columns and a unicode array for the string ones, which pyarrow "
        "turns into the same int64 and string columns",
    ),
    (
        "store.verify",
        "verify_file",
        r"sha256_file\(f, ",
        "sha256_file's label only words its refusal of a file that is not regular, which regular() just above "
        "has excluded: the label is never printed",
    ),
    ("metrics.imbalance", "_cv_from", r'"\.\.\.E,', EINSUM),
    ("metrics.imbalance", "_entropy_from", r'"\.\.\.E,', EINSUM),
    ("metrics.imbalance", "_entropy_from", r"x > 0, x, 2\.0", "log(2) is multiplied by x = 0 there: 0 either way"),
    ("metrics.imbalance", "_gini_weights", r"np\.arange\(1, E \+ 1, (dtype=None)?\)", DTYPE_FLOAT),
    ("metrics.imbalance", "_metrics_rows", r"axis=\+1|shape\[\+1\]", AXIS_2D),
    ("metrics.imbalance", "_n_threads", r".", PARALLEL),
    ("metrics.imbalance", "all_metrics", r"reshape\(-2", RESHAPE),
    ("metrics.imbalance", "all_metrics", r"np\.empty\(\(len\(METRICS\), R\), (dtype=None)?\)", DTYPE_DEFAULT_FLOAT),
    ("metrics.imbalance", "all_metrics", r"step = |starts = |n_threads|ThreadPoolExecutor", PARALLEL),
    (
        "metrics.imbalance",
        "_sort_fast",
        r".",
        FAST_PATH + "; every formula then converts the sorted values to float64 (exact below 2**53)",
    ),
    ("metrics.imbalance", "hot_share", r"np\.partition\(x, E - k, \)", AXIS_2D),
    ("metrics.imbalance", "lorenz", r"np\.arange\(E \+ 1, (dtype=None)?\)", DTYPE_FLOAT),
    ("metrics.imbalance", "_cv_from|_gini_sorted|_ratio|lorenz", r"np\.errstate\((divide=None, )?invalid=", DIVIDE),
    # ---- metrics.stats and schema
    ("metrics.stats", "_boot_weights", r"astype\(None\)", DTYPE_DEFAULT_FLOAT),
    (
        "metrics.stats",
        "_boot_weights",
        r"rng\.integers\(n, size",
        "rng.integers(n) draws from [0, n), as rng.integers(0, n) does",
    ),
    ("metrics.stats", "bootstrap_mean_ci", r"reshape\(n, -2\)", RESHAPE),
    ("metrics.stats", "bootstrap_mean_ci", r"np\.errstate\((divide=None, )?invalid=", DIVIDE),
    ("metrics.stats", "bootstrap_mean_ci", r"\(~mask\)\.astype\(None\)", DTYPE_DEFAULT_FLOAT),
    ("metrics.stats", "bootstrap_mean_ci|layer_mean|summarise", r'simplefilter\("ignore", \)', WARNINGS),
    (
        "metrics.stats",
        "bootstrap_mean_ci",
        r"\(np\.isnan\(means\)\.any\(\)\) or True",
        "nanquantile equals quantile when no value is NaN",
    ),
    ("metrics.stats", "summarise", r"astype\(None\)", DTYPE_DEFAULT_FLOAT),
    ("metrics.stats", "summarise|layer_mean", r"np\.asarray\((values|v), (dtype=None)?\)", DTYPE_FLOAT),
    (
        "metrics.schema",
        "tidy_table",
        r"or True|pa\.array\(a, (None)?\)|^\+\s*dtype=None\)|^\+\s*\)$",
        "the labels are of their columns' types (str, int), so inferring the array type gives the schema's type",
    ),
    # ---- ep.steps
    ("ep.steps", "_check_counts", r'"XXuiXX"', "'u' and 'i' are still in the string tested with `in`"),
    ("ep.steps", "source_of", r"np\.asarray\(order, (dtype=None)?\)", INDEX),
    (
        "ep.steps",
        "source_of",
        r"initial=1\)|_level_dtype\(unit_total, \)|unit_total, None, order",
        "only the narrowest level type changes; every level type still holds its sums",
    ),
    ("ep.steps", "sum_units", r"counts\.dtype\.kind|counts\.size", FAST_PATH),
    (
        "ep.steps",
        "sum_units",
        r"sum\(axis=0, (dtype=None)?\)",
        "this path sums signed integers or floats: numpy sums integers narrower than 64 bits in int64 by default",
    ),
    ("ep.steps", "StepSource._sum_from", r"axis=2, (dtype=None)?\)$", WIDER),
    ("ep.steps", "StepSource.totals", r"self\._totals, B, None\)", "the totals are int64 already: int64 sums"),
    (
        "ep.steps",
        "sum_units",
        r"min\(257|\.max / \(|\+ 2\)\)\)\)",
        "a chunk of rows is still small enough that its sum cannot wrap (min with the type's own bound)",
    ),
    ("ep.steps", "StepSource.__init__", r"np\.asarray\(order, (dtype=None)?\)", INDEX),
    ("ep.steps", "StepSource.steps|StepSource.aggregate", r"reshape\(\(-2,\)", RESHAPE),
    ("ep.steps", "StepSource.totals", r"if 2 not in", "level 2 of the totals is only ever summed from level 1"),
    (
        "ep.steps",
        "StepSource.check",
        r"int\(N\) < 1 and int\(B\) < 1",
        "n_steps is 0 for N*B < 1, so the check fails the same way",
    ),
    ("ep.steps", "StepSource.holders", r"require_units\(", "the name only words a window's refusal"),
    ("ep.steps", "StepSource.unit_steps", r"initial=(None|-2)\)", "order is never empty here: initial is unused"),
    ("ep.steps", "StepSource.unit_steps", r"np\.full\(size, -1, (dtype=None)?\)", DTYPE_INT),
    (
        "ep.steps",
        "WindowSource.__init__",
        r"total = |order=|total, \)$|np\.asarray\(window, (dtype=None)?\)",
        WINDOW_BOUND + "; order [0] is np.arange(1) and the window is int64 already",
    ),
    ("ep.steps", "WindowSource.like", r"self\._unit_total\)$|1, None\)|1, \)", WINDOW_BOUND),
    (
        "ep.steps",
        "WindowSource.totals",
        r"dtype=None\)|sum\(axis=-1, \)|ranks\(N, None\)",
        "the window's ranks are int64 and do not depend on B",
    ),
    # ---- ep.traffic
    ("ep.traffic", "_by_rank", r"np\.full\(p\.shape\[0\], i, (dtype=None)?\)", DTYPE_INT),
    ("ep.traffic", "_by_rank", r"np\.concatenate\(parts, \)", AXIS_2D),
    ("ep.traffic", "_by_rank", r"reshape\(-2", RESHAPE),
    ("ep.traffic", "_wide", r'"XXuibXX"', "'u', 'i' and 'b' are still in the string tested with `in`"),
    ("ep.traffic", "_wide", r"copy=|, \)$", COPY),
    ("ep.traffic", "distinct_destinations", r"np\.sort\(np\.asarray\(dst\), \)", AXIS_2D),
    ("ep.traffic", "off_diagonal", r"shape\[-2\]", SQUARE),
    (
        "ep.traffic",
        "pair_counts",
        r"np\.asarray\(dst, (dtype=None)?\)",
        "dst is added to an int64 array, so numpy computes the keys in int64 either way",
    ),
    ("ep.traffic", "pair_counts", r"np\.asarray\(mask, (dtype=None)?\)", "every caller passes a boolean mask"),
    (
        "ep.traffic",
        "split_sizes",
        r"floor\(s - 1e-9\)",
        "a whole number taken as floor - 1 gets the unit back as the largest remainder (1.0): the same split",
    ),
    ("ep.traffic", "split_sizes", r"astype\(None\)|np\.asarray\(s, (dtype=None)?\)", DTYPE_FLOAT),
    ("ep.traffic", "split_sizes", r"round\(frac, 10\)", DEGENERATE),
    ("ep.traffic", "split_sizes", r"repeat\(s\.shape\[1\], 0\)", SQUARE),
    ("ep.traffic", "split_sizes", r"lexsort\(\(cols, -np\.round\(frac, 9\)\), (axis=\+1)?\)", AXIS_2D),
    ("ep.traffic", "token_destinations", r"np\.asarray\(token_ids, (dtype=None)?\)", INDEX),
    ("ep.traffic", "traffic_matrix", r'"ILE,LEJ->LIJ"', EINSUM),
    ("ep.traffic", "traffic_matrix", r"np\.asarray\(src, (dtype=None)?\)", DTYPE_FLOAT),
    # ---- ep.loads
    ("ep.loads", "_acc", r".", WIDER),
    ("ep.loads", "_group_sum", r"if [ab] >|if [ab] >=", FAST_PATH),
    ("ep.loads", "_group_sum", r"dtype=None\)|sum\(axis=-[12], \)|_acc\(x, None\)", WIDER),
    ("ep.loads", "_group_sum", r"copy=(True|None)\)|x\.dtype, \)$", COPY),
    (
        "ep.loads",
        "_group_sum",
        r"reshape\(None\)\.astype|astype\(dt and x\.dtype",
        "one expert per rank (b = 1): nothing is summed and the shape is x's own; x was widened by _acc already",
    ),
    (
        "ep.loads",
        "_rank_index",
        r"argsort|take_along_axis|cumsum\(slots, axis=\+1\)|np\.where\(valid, start"
        r"|valid\.all\(\)\) and False",
        "the order of a rank's experts inside its gather and the padding index do not change a sum (padding is masked)",
    ),
    ("ep.loads", "replica_max_mean", r"np\.asarray\(c, (dtype=None)?\)", DTYPE_FLOAT),
    ("ep.loads", "replica_max_mean", r"np\.errstate\((divide=None, )?invalid=", DIVIDE),
    (
        "ep.loads",
        "RankMap.__init__",
        r"E / N == 0|E % N != 0|E % N == 1|np\.all\(None\)|np\.arange\(E\) / "
        r"|\(E / N\)|reshape\(-2",
        FAST_PATH + "; a layout the mutated test accepts is one the chosen path sums correctly",
    ),
    ("ep.loads", "RankMap._rank_masks", r'"XXmasksXX"|"MASKS"', MASKS_LABEL),
    (
        "ep.loads",
        "RankMap._rank_masks",
        r"np\.dtype\(None\)\.str|astype\(None\)|reshape\(-2",
        "0/1 masks in another type multiply to the same sums, written into the output's own type",
    ),
    (
        "ep.loads",
        "RankMap._take",
        r"g\.reshape\(-1, (self\.N|L), k\)\.sum",
        "g is laid out [n, L, N, k]: summing each run of k and merging L into the leading axis gives the same "
        "sums in the same order, which loads reshapes to [..., L, N]",
    ),
    (
        "ep.loads",
        "RankMap._take",
        r"\.ravel\(\)\.astype\(None\)",
        "a float 0/1 mask gives float products that the sum casts back to the integer type (dtype=dt)",
    ),
    (
        "ep.loads",
        "RankMap._take",
        r"k > 16|k >= 17|dtype=None\)|sum\(axis=-?1, \)|_acc\(np\.take\(x2, "
        r"self\._index\(L\), axis=1\), None\)|reshape\(-2",
        WIDER + "; " + FAST_PATH,
    ),
    (
        "ep.loads",
        "RankMap.loads",
        r"dtype=None\)|sum_last=True, \)|sum_last=False, \)|sum_last=None|L, None\)"
        r"|L, \)$|reshape\(-2",
        WIDER,
    ),
    ("ep.loads", "RankMap.loads", r'"\.\.\.LE,', EINSUM),
    ("ep.loads", "RankMap.loads", r"astype\(None\)", DTYPE_DEFAULT_FLOAT),
    (
        "ep.loads",
        "RankMap.loads",
        r"\(self\.layered\) or True",
        "without layers the rows are taken as layers of one expert set: the same per-row sums",
    ),
    (
        "ep.loads",
        "RankMap.local",
        r"reshape\(\(?-2|\.sum\(axis=1, (dtype=None)?\)|_acc\(x\.reshape\(\(-1, N, L, E\)\), "
        r"None\)|N < 16|N <= 17|_rank_masks\(L, ",
        WIDER + "; " + FAST_PATH,
    ),
    ("ep.loads", "RankMap.local", r'"\.\.\.ILE,|"NLE,', EINSUM),
    ("ep.loads", "RankMap.local", r"x\.astype\(None\)", DTYPE_DEFAULT_FLOAT),
    # ---- ep.layout
    ("ep.layout", "_eplb_copies", r"groups / nodes", "groups is a multiple of nodes: the float quotient is exact"),
    ("ep.layout", "_eplb_copies", r"argsort\(pos\.reshape\(X, E\), \)|take_along_axis\(.*, \)", AXIS_2D),
    ("ep.layout", "_from_copies|contiguous|round_robin", r"np\.arange\((N|E), (dtype=None)?\)", DTYPE_INT),
    (
        "ep.layout",
        "_one_hot",
        r"np\.bincount\(rank_of, \)",
        "every rank holds an expert in contiguous and round-robin layouts (N <= E): bincount has N entries already",
    ),
    ("ep.layout", "balanced_packing", r"cap = n / num_packs", "n is a multiple of num_packs: the float is exact"),
    ("ep.layout", "balanced_packing", r"np\.asarray\(w, (dtype=None)?\)", DTYPE_FLOAT),
    ("ep.layout", "balanced_packing", r'argsort\(-w, kind="stable"\)', AXIS_2D),
    ("ep.layout", "balanced_packing", r'kind="STABLE"', KIND_CASE),
    (
        "ep.layout",
        "balanced_packing",
        r"filled = np\.zeros\(\(X, num_packs\), (dtype=None)?\)",
        "slot counts in float64 compare and index-assign the same whole numbers",
    ),
    ("ep.layout", "eplb|eplb_layers|replicate_experts", r"np\.asarray\((load|w), (dtype=None)?\)", DTYPE_FLOAT),
    (
        "ep.layout",
        "eplb_layers",
        r"np\.arange\(N, (dtype=None)?\)|/ \(N // int|// \(N / int",
        "with_nodes converts the node ids to int64; whole-number quotients are exact",
    ),
    ("ep.layout", "Placement.with_nodes", r"np\.asarray\(rank_node, (dtype=None)?\)", DTYPE_INT),
    # ---- ep.placements
    ("ep.placements", "build_placement", r"\(spec\.fitted\) or True", "builders of unfitted placements ignore fit"),
    ("ep.placements", "default_redundant", r"and False|N >= E", "for 0 < E <= N, (-E) mod N is N - E"),
    ("ep.placements", "trace_subset", r"np\.asarray\((offsets|idx), (dtype=None)?\)", DTYPE_INT),
    # ---- replay.plan
    (
        "replay.plan",
        "balanced_splits|skewed_splits|synth_topk",
        r"np\.asarray\((row_totals|src_counts), "
        r"(dtype=None)?\)",
        DTYPE_INT,
    ),
    (
        "replay.plan",
        "case_bytes",
        r"N > 1\) or True|N >= 1",
        "one rank has an empty off-diagonal: its max is the 0 the branch gives",
    ),
    ("replay.plan", "case_bytes", r"np\.asarray\(splits, (dtype=None)?\)", DTYPE_FLOAT),
    ("replay.plan", "case_bytes", r"shape\[1\]", SQUARE),
    ("replay.plan", "hot_pair_splits", r"np\.array\(\[\[P\]\], (dtype=None)?\)", DTYPE_INT),
    ("ep.steps", "spread", r"np\.full\(N, total // N, (dtype=None)?\)", DTYPE_INT),
    ("ep.steps", "spread", r"total / N, dtype=np\.int64", "total >= 0: the int64 of total / N is total // N"),
    # ---- simulate.forms
    (
        "simulate.forms",
        "_pair_sums",
        r"off >= 0|np\.maximum\(off, 2\.0\)",
        "a zero entry costs 0 either way; below the smallest calibrated size (>= 1 MiB) the rate is clamped, so 1 "
        "and 2 bytes get the same rate",
    ),
    ("simulate.forms", "_pair_sums|_rel_sse|feats", r"\.(mean|max|sum)\(\+1\)", AXIS_2D),
    ("simulate.forms", "feats", r"shape\[\+1\]|shape\[-2\]", SQUARE),
    (
        "simulate.forms",
        "feats",
        r"\(N > 1\) or True|N >= 1 else",
        "one rank has an empty off-diagonal: its max is the 0 the branch gives",
    ),
    (
        "simulate.forms",
        "evaluate|feats|fit_balanced|fit_line|fit_params|Form.predict|Balanced\\..*",
        r"np\.asarray\([^)]*, (dtype=None|None)?\)|np\.asarray\(self\.fn\(f, bal, th\), (dtype=None)?\)",
        DTYPE_FLOAT,
    ),
    (
        "simulate.forms",
        "evaluate",
        r"reshape\(None\)|reshape\(\(-2,\)|shape\[-3:\]",
        "feats and the forms broadcast over leading axes, so not flattening them gives the same values",
    ),
    ("simulate.forms", "fit_balanced", r"med >= alpha", DEGENERATE),
    (
        "simulate.forms",
        "fit_line",
        r"wt = 2\.0 / t",
        "scaling every weight by one factor leaves the weighted least squares solution unchanged",
    ),
    ("simulate.forms", "fit_line", r"lstsq\(X, t \* wt, \)", "rcond=None is numpy's default"),
    ("simulate.forms", "fit_line", r"a <= 0 or|slope < 0", DEGENERATE + " (an intercept or slope of exactly 0)"),
    (
        "simulate.forms",
        "fit_params",
        r"np\.meshgrid\(\*axes, \)",
        "the grid holds the same points in another order; the best point is the same unless two points tie exactly",
    ),
    ("simulate.forms", "fit_params", r"reshape\(-2", RESHAPE),
    (
        "simulate.forms",
        "Balanced.bw",
        r"np\.maximum\(np\.asarray\(m, dtype=np\.float64\), 2\.0\)",
        "below the smallest calibrated size the rate is clamped: 1 and 2 bytes get the same rate",
    ),
    # ---- simulate.fit
    ("simulate.fit", "_fit_of", r"theta, \)$", "every caller passes no info: {} either way"),
    ("simulate.fit", "_heldout", r"np\.empty\(n, (dtype=None)?\)", "fold numbers in float64 compare equal to k"),
    ("simulate.fit", "_heldout|fit_form", r"< KNOT_TOL", DEGENERATE),
    ("simulate.fit", "_knots", r">= KNOT_TOL", DEGENERATE),
    ("simulate.fit", "imbalanced", r"f\.M >= ", DEGENERATE),
    (
        "simulate.fit",
        "fit_group",
        r"\(FORMS\[name\]\.params\) or True",
        "a form without parameters predicts the same fitted or held out",
    ),
    ("simulate.fit", "fit_group", r"\(sel\.t\.size\) or True", "errors of no samples are the same empty array"),
    ("simulate.fit", "_score", r'float\("INF"\)', "float() reads 'INF' as it reads 'inf'"),
    ("simulate.fit", "pct_errors", r"np\.asarray\((t|pred), (dtype=None)?\)", DTYPE_FLOAT),
    # ---- compute.features, compute.holdout: loads arrive as int64 [R, G] (pad_loads)
    ("compute.features", "features|torch_tiles|roofline_ms", r"\.sum\(\+1\)|(concatenate|stack)\(.*, \+1\)", AXIS_2D),
    ("compute.features", "features|roofline_ms", r"astype\(None\)", DTYPE_DEFAULT_FLOAT),
    ("compute.features", "features|roofline_ms", r"np\.asarray\(t, (dtype=None)?\)", DTYPE_INT),
    ("compute.features", "pad_loads", r"= a\.astype\(None\)", "whole numbers cast back into the int64 array"),
    ("compute.features", "pad_loads", r'"XXiufXX"', "dtype kinds are one letter: in 'XXiufXX' iff in 'iuf'"),
    ("compute.holdout", "held_out|summary|routing_vs_even", r"dtype=None\)|, \)$", DTYPE_FLOAT),
]
