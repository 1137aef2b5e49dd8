"""One look for every figure of a report: a colour per condition, a line style per placement.

``Style(conditions, placements)`` is built once per report from every run's condition and every
placement scanned, so a condition has the same colour and a placement the same line style in every
figure. Mock conditions are greys and black (they are not text), real-text conditions take the
colour-blind-safe Okabe-Ito palette in a fixed order; conditions beyond those get the next unused
colours in order of first appearance.
"""

from __future__ import annotations

__all__ = ["LEGEND", "Style"]

_FIXED = {"mock-uniform": "#000000", "mock-ramp": "#6e6e6e", "mock-unigram": "#a8a8a8",
          "prose": "#0072B2", "code": "#E69F00", "math": "#009E73", "multilingual": "#D55E00"}
_EXTRA = ("#CC79A7", "#56B4E9", "#F0E442", "#8c564b", "#7f7f7f", "#17becf", "#bcbd22", "#9467bd")
_DASHES = {"contiguous": "-", "round_robin": "--", "eplb": ":", "coact": "-.", "affinity": (0, (10, 3))}
_EXTRA_DASHES = ((0, (1, 3)), (0, (4, 1, 1, 1)), (0, (3, 2, 1, 2, 1, 2)), (0, (2, 1)))
#: Where every figure puts its legend: outside the axes, to the right (constrained layout).
LEGEND = {"loc": "outside right center", "fontsize": 8, "frameon": False}


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
