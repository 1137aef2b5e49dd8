"""Minimum-cost assignment (the Hungarian method), in numpy.

Used to relabel EP ranks: a refitted placement's rank labels are arbitrary, so before counting the
experts a refit moves DODOCO maps the new ranks onto the old ones with the largest overlap
(``dodoco.ep.rebalance``), and trace placements try the relabeling of a layer's ranks that best
matches its neighbours (``dodoco.ep.trace_placement``).

Shape legend: n rows, m columns (n <= m).
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["linear_assignment"]


def linear_assignment(cost) -> np.ndarray:
    """Rows to distinct columns at minimum total cost: cost[n, m] (n <= m) -> col int64 [n].

    Shortest augmenting paths with row and column potentials (Kuhn-Munkres as in Jonker and
    Volgenant), O(n^2 m); the inner loop over columns is vectorised. Exact: the tests compare it
    with every permutation on small matrices.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] > c.shape[1] or not np.isfinite(c).all():
        raise DodocoError(f"assignment cost must be a finite [n, m] matrix with n <= m, got shape {c.shape}")
    n, m = c.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=np.int64)  # match[j]: row (1-based) on column j, 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            j1 = int(np.argmin(np.where(free, minv[1:], np.inf))) + 1
            delta = minv[j1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    col = np.empty(n, dtype=np.int64)
    rows = match[1:]
    col[rows[rows > 0] - 1] = np.flatnonzero(rows > 0)
    return col
