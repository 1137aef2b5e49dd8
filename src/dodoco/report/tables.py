"""Terminal tables and their JSON/CSV forms: every table DODOCO prints can also be saved.

A printed table never breaks a number or a name across lines (``layout`` returns its lines):

- columns empty in every row are left out; columns holding one value in every row (of two rows or
  more) fold into a caption line ``every row: model zoo:qwen3_moe, seq_len 256``;
- provenance: a row's ``provenance`` dict becomes ``<term>_label`` columns, and every column named
  ``*_label`` (or passed in ``labels``) shows the kind of its label in the cell (``measured``,
  ``calibrated``, ``nominal``, ...) with the full texts listed under the table;
- on a terminal too narrow for every column, columns are left out by priority, the rightmost first,
  never those in ``keep`` (the identifiers and the numbers the command exists for) nor the labels,
  with a note naming them; when even those do not fit (or a one-row table does not), each row is
  printed as ``name value`` pairs wrapped between pairs;
- when stdout is not a terminal (a pipe, a file, a CI log) the table is plain aligned text at its
  full width.

Sentences go through ``wrap_text`` / ``print_text``: on a terminal they wrap at spaces only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap

from dodoco.store.atomic import json_safe

__all__ = [
    "cell_text",
    "column_decimals",
    "flatten_provenance",
    "label_kind",
    "layout",
    "print_table",
    "print_text",
    "table_columns",
    "to_csv",
    "to_json",
    "wrap_text",
]


def _empty(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def cell_text(value, column: str = "", decimals: int | None = None) -> str:
    """One cell as text: floats with ``decimals`` (default 4 significant digits; NaN as -), ints whole,
    booleans yes/no, lists joined by commas, batch 0 (all sequences at once) as ``all``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "batch" and isinstance(value, (int, float)) and value == 0:
        return "all"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if decimals is not None:
            return f"{value:.{decimals}f}" if decimals >= 0 else f"{value:.3e}"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        return ",".join(cell_text(v) for v in value)
    return "" if value is None else str(value)


def column_decimals(rows: list[dict], column: str) -> int | None:
    """Decimals shared by a column's floats: 0 when every number is a whole number (integer columns
    print as integers), else 4 significant digits of the median magnitude (0..6 decimals; -1 = use
    scientific notation for columns of tiny values); None for non-numeric columns."""
    vals = [
        v for r in rows if isinstance(v := r.get(column), (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    if not vals or len(vals) != sum(1 for r in rows if not _empty(r.get(column))):
        return None
    if all(float(v).is_integer() for v in vals):
        return 0
    mags = sorted(abs(v) for v in vals if v != 0)
    if not mags:
        return 0
    med = mags[(len(mags) - 1) // 2]  # the lower median
    if med < 1e-3:
        return -1
    return int(min(6, max(0, 3 - math.floor(math.log10(med)))))


def table_columns(rows: list[dict], columns: list[str] | None = None) -> list[str]:
    """The columns to show: ``columns`` (default every key in order of first appearance), without
    those empty (None, "" or NaN) in every row."""
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    return [c for c in columns if any(not _empty(row.get(c)) for row in rows)]


def flatten_provenance(rows: list[dict], columns: list[str] | None = None) -> tuple[list[dict], list[str] | None]:
    """Rows whose ``provenance`` dict ({term: label}) becomes ``<term>_label`` keys, and ``columns``
    with those keys where ``provenance`` stood (appended when it was not named)."""
    if not any(isinstance(r.get("provenance"), dict) for r in rows):
        return rows, columns
    terms = list(dict.fromkeys(k for r in rows if isinstance(r.get("provenance"), dict) for k in r["provenance"]))
    out = []
    for r in rows:
        p = r.get("provenance")
        out.append(
            {
                **{k: v for k, v in r.items() if k != "provenance"},
                **({f"{t}_label": p.get(t) for t in terms} if isinstance(p, dict) else {}),
            }
        )
    if columns is not None:
        new = [f"{t}_label" for t in terms]
        columns = (
            [x for c in columns for x in (new if c == "provenance" else [c])]
            if "provenance" in columns
            else list(columns) + new
        )
    return out, columns


def label_kind(text) -> str:
    """The kind of a provenance label: ``"calibrated: nvidia-h200-x8 ..."`` -> ``calibrated``,
    ``"nominal (not measured): ..."`` -> ``nominal``; text without a qualifier is kept whole."""
    s = "" if text is None else str(text)
    head = s.split(":", 1)[0].split(" (", 1)[0].strip()
    return head if head and len(head) < len(s) else s


def _is_label(column: str, labels) -> bool:
    return column.endswith("_label") or column in labels


def wrap_text(text: str, width: int | None, first: str = "", rest: str | None = None) -> list[str]:
    """``text`` as lines of at most ``width`` characters broken at spaces only (a word longer than
    the width stays whole on its own line); ``width`` None: one line."""
    rest = first if rest is None else rest
    if not width:
        return [first + text]
    return textwrap.wrap(
        text,
        max(len(first) + 8, width),
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _pack(items: list[str], width: int | None, first: str, rest: str, sep: str = "   ") -> list[str]:
    """Items after ``first`` (lines after the first start with ``rest``), packed into lines of at most
    ``width``; an item longer than a line (a long text value) wraps at its spaces onto lines of its own."""
    lines, cur, empty = [], first, True
    for it in items:
        gap = "" if empty else sep
        if not empty and width and len(cur) + len(gap) + len(it) > width:
            lines.append(cur)
            cur, empty, gap = rest, True, ""
        if width and len(cur) + len(gap) + len(it) > width:
            wrapped = wrap_text(it, width, cur + gap, rest + "  ")
            lines += wrapped[:-1]
            cur, empty = wrapped[-1], False
            continue
        cur, empty = cur + gap + it, False
    return lines + [cur]


def _fits(widths: dict, shown: list[str]) -> int:
    return sum(widths[c] for c in shown) + 2 * max(0, len(shown) - 1)


def _grid(columns, cells, right) -> list[str]:
    widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(columns)]

    def line(parts):
        return "  ".join(p.rjust(w) if r else p.ljust(w) for p, w, r in zip(parts, widths, right)).rstrip()

    return [line(columns), "  ".join("-" * w for w in widths)] + [line(row) for row in cells]


def layout(
    rows: list[dict], title: str, columns: list[str] | None = None, width: int | None = None, *, keep=(), labels=()
) -> list[str]:
    """The lines of a table (see the module docstring); ``width`` None: full width (not a terminal)."""
    if not rows:
        return [f"{title}: no rows"]
    rows, columns = flatten_provenance(rows, columns)
    columns = table_columns(rows, columns)
    dec = {c: column_decimals(rows, c) for c in columns}
    full = {c: [cell_text(r.get(c), c, dec[c]) for r in rows] for c in columns}
    shown_text = {c: [label_kind(t) for t in v] if _is_label(c, labels) else v for c, v in full.items()}
    const = [c for c in columns if len(rows) > 1 and len(set(full[c])) == 1 and full[c][0]]
    if len(const) == len(columns):
        const = const[1:]
    shown = [c for c in columns if c not in const]
    out = wrap_text(title, width)
    if const:
        pairs = [f"{c} {full[c][0]}" + ("," if i < len(const) - 1 else "") for i, c in enumerate(const)]
        out += _pack(pairs, width, "every row: ", "  ", sep=" ")
    legend = [
        f"{c}: {t}"
        for c in shown
        if _is_label(c, labels)
        for k, t in dict.fromkeys(zip(shown_text[c], full[c]))
        if k != t
    ]
    widths = {c: max([len(c)] + [len(t) for t in shown_text[c]]) for c in shown}
    must = [c for c in shown if c in keep or _is_label(c, labels) or c == shown[0]]
    dropped = []
    if width and _fits(widths, shown) > width and len(rows) > 1:
        while _fits(widths, shown) > width and [c for c in shown if c not in must]:
            dropped.insert(0, [c for c in shown if c not in must][-1])
            shown.remove(dropped[0])
    right = [dec[c] is not None for c in shown]
    if width and _fits(widths, shown) > width:  # records: every column, pairs never broken
        shown, dropped = [c for c in columns if c not in const], []
        for i in range(len(rows)):
            out += _pack([f"{c} {shown_text[c][i]}" for c in shown if shown_text[c][i]], width, "- ", "  ")
    else:
        out += _grid(shown, [[shown_text[c][i] for c in shown] for i in range(len(rows))], right)
    for line in legend:
        out += wrap_text(line, width, "  ", "    ")
    if dropped:
        out += wrap_text(
            f"(left out to fit the terminal: {', '.join(dropped)}; a wider terminal, a pipe or --json shows them)",
            width,
        )
    return out


def _console(console=None, stderr: bool = False):
    from rich.console import Console

    return console or Console(stderr=stderr)


def print_table(
    rows: list[dict], title: str, columns: list[str] | None = None, console=None, *, keep=(), labels=()
) -> None:
    """Print ``rows`` (dicts) under ``title``; ``columns`` picks and orders them (default: all);
    ``keep``: columns never left out on a narrow terminal; ``labels``: provenance columns besides
    ``*_label``. Never breaks a cell: see the module docstring."""
    console = _console(console)
    width = console.width if console.is_terminal else None
    for line in layout(rows, title, columns, width, keep=keep, labels=labels):
        console.print(line, markup=False, highlight=False, soft_wrap=True, crop=False)


def print_text(text: str, *, bullet: str = "", console=None, stderr: bool = False) -> None:
    """Print a sentence (or a note): on a terminal wrapped at spaces only, continuation lines indented
    under the bullet; elsewhere one line."""
    console = _console(console, stderr)
    width = console.width if console.is_terminal else None
    for line in wrap_text(text, width, bullet, " " * len(bullet)):
        console.print(line, markup=False, highlight=False, soft_wrap=True, crop=False)


def to_json(rows) -> str:
    """Strict JSON of a table (or any nesting of dicts/lists): NaN and inf become null."""
    return json.dumps(json_safe(rows), indent=2, default=str, allow_nan=False)


def to_csv(rows: list[dict], columns: list[str] | None = None) -> str:
    """CSV of ``rows``: the given columns, else every key in order of first appearance; NaN -> empty;
    a ``provenance`` dict as ``<term>_label`` columns."""
    if not rows:
        return ""
    rows, columns = flatten_provenance(rows, columns)
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buf.getvalue()
