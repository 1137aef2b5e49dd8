"""The one look of every report figure: colours, line styles, markers, fonts, legends, titles, colour
bars, and the checks that nothing is clipped and no axes is crowded.

``Style(conditions, placements)`` is built once per report from every run's condition and every
placement scanned, so a condition has the same colour and a placement the same line style in every
figure. Mock conditions are greys and black (they are not text), real-text conditions take the
colour-blind-safe Okabe-Ito palette in a fixed order; conditions beyond those get the next unused
colours in order of first appearance. Dispatchers (the dispatch figures) take ``DISPATCHER_COLORS``
in order, case kinds ``CASE_MARKERS``.

Every figure: its title through ``suptitle`` (wrapped to the figure's width), one legend outside the
axes through ``legend`` (``LEGEND``), colour bars through ``colorbar`` (label wrapped to the bar);
``fit`` grows a figure until every text lies inside it, ``audit`` lists what is still clipped and the
axes with more than ``MAX_LINES`` lines (tests/report/test_figures.py).
"""

from __future__ import annotations

import textwrap

__all__ = [
    "CASE_MARKERS",
    "DISPATCHER_COLORS",
    "DPI",
    "LEGEND",
    "MAX_LINES",
    "Style",
    "audit",
    "colorbar",
    "fit",
    "legend",
    "suptitle",
]

_FIXED = {
    "mock-uniform": "#000000",
    "mock-ramp": "#6e6e6e",
    "mock-unigram": "#a8a8a8",
    "prose": "#0072B2",
    "code": "#E69F00",
    "math": "#009E73",
    "multilingual": "#D55E00",
}
_EXTRA = ("#CC79A7", "#56B4E9", "#F0E442", "#8c564b", "#7f7f7f", "#17becf", "#bcbd22", "#9467bd")
_DASHES = {"contiguous": "-", "round_robin": "--", "eplb": ":", "coact": "-.", "affinity": (0, (10, 3))}
_EXTRA_DASHES = ((0, (1, 3)), (0, (4, 1, 1, 1)), (0, (3, 2, 1, 2, 1, 2)), (0, (2, 1)))
#: Where every figure puts its legend: outside the axes, to the right (constrained layout).
LEGEND = {"loc": "outside right center", "fontsize": 8, "frameon": False, "handlelength": 3.2}
#: Colours of dispatchers (or EP degrees) in the dispatch figures, in order; markers of case kinds.
DISPATCHER_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8c564b")
CASE_MARKERS = {"real": "o", "mock": "s", "balanced": "^", "skew": "x", "grid": "+"}
DPI = 110
TITLE_SIZE = 11
#: At most this many lines in one axes; more go to small multiples.
MAX_LINES = 6


class Style:
    """Colours of conditions and line styles of placements for one report."""

    def __init__(self, conditions=(), placements=()):
        self._color = {}
        extra = iter(_EXTRA)
        for c in dict.fromkeys(conditions):
            self._color[c] = _FIXED.get(c) or next(extra, "#333333")
        self._dash = {}
        more = iter(_EXTRA_DASHES)
        for p in dict.fromkeys(placements):
            self._dash[p] = _DASHES.get(p) or next(more, "-")

    def color(self, condition: str) -> str:
        """The colour of ``condition`` (a condition not known when the style was built: dark grey)."""
        return self._color.get(condition) or _FIXED.get(condition, "#333333")

    def dash(self, placement: str | None) -> str:
        """The line style of ``placement`` (solid where no placement applies)."""
        if placement is None:
            return "-"
        return self._dash.get(placement) or _DASHES.get(placement, "-.")

    def conditions(self) -> list[str]:
        return list(self._color)

    def placements(self) -> list[str]:
        return list(self._dash)


def legend(fig, entries) -> None:
    """The figure's one legend, outside the axes: entries [(label, Line2D kwargs)] (none: no legend)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], label=label, **kw) for label, kw in entries]
    if handles:
        fig.legend(handles=handles, **LEGEND)


def suptitle(fig, title: str) -> None:
    """The figure's title, wrapped to the figure's width so that it is never cut."""
    fig.suptitle(
        textwrap.fill(title, max(30, int(fig.get_figwidth() * 10.5)), break_on_hyphens=False), fontsize=TITLE_SIZE
    )


def colorbar(fig, im, axes, label: str) -> None:
    """A colour bar beside ``axes``, its label wrapped to the bar's height."""
    height = fig.get_figheight() * 0.85
    fig.colorbar(
        im, ax=list(axes), label=textwrap.fill(label, max(16, int(height * 9)), break_on_hyphens=False), shrink=0.9
    )


def _outside(fig, renderer) -> list[tuple[str, float]]:
    """(what, pixels it lies outside the figure) for every drawn axes (with its tick and axis labels and
    title), figure text, title and legend that is not inside the figure."""
    items = [
        (f"axes {ax.get_title() or ax.get_ylabel()}", ax.get_tightbbox(renderer)) for ax in fig.axes if ax.get_visible()
    ]
    texts = list(fig.texts) + ([fig._suptitle] if fig._suptitle is not None else [])
    items += [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_visible() and t.get_text()]
    items += [("legend", lg.get_window_extent(renderer)) for lg in fig.legends]
    box, out = fig.bbox, []
    for what, e in items:
        over = max(box.x0 - e.x0, e.x1 - box.x1, box.y0 - e.y0, e.y1 - box.y1) if e is not None else 0.0
        if over > 1.0:
            out.append((what, over))
    return out


def fit(fig, tries: int = 4) -> None:
    """Grow the figure (constrained layout reflows) until every text lies inside it."""
    for _ in range(tries):
        fig.draw_without_rendering()  # the layout and every text's extent, no pixels
        out = _outside(fig, fig.canvas.get_renderer())
        if not out:
            return
        grow = 2 * max(o for _, o in out) / fig.dpi + 0.2
        w, h = fig.get_size_inches()
        fig.set_size_inches(w + grow, h + grow)


def _data_lines(ax) -> int:
    return sum(
        1
        for ln in ax.get_lines()
        if ln.get_linestyle() not in ("None", "none", "", " ")
        and len(ln.get_xdata()) >= 2
        and ln.get_gid() != "reference"
    )


def audit(fig) -> list[str]:
    """What is wrong with a drawn figure: texts outside it, axes with more than MAX_LINES lines."""
    fig.draw_without_rendering()
    problems = [f"clipped by {o:.0f} px: {t[:60]!r}" for t, o in _outside(fig, fig.canvas.get_renderer())]
    problems += [
        f"{_data_lines(ax)} lines in axes {ax.get_title()[:40]!r}" for ax in fig.axes if _data_lines(ax) > MAX_LINES
    ]
    return problems
