"""Terminal tables and their JSON/CSV forms: every table DODOCO prints can also be saved.

A printed table never breaks a number or a name across lines. On a terminal wide enough it is a
rich table; on a narrower terminal the columns that do not fit are left out (the first column is
always kept) and a note names them; when stdout is not a terminal (a pipe, a file, a CI log) it is
plain aligned text at its full width. Columns that are empty in every row are not printed.
"""

from __future__ import annotations

import csv
import io
import json
import math

from dodoco.store.atomic import json_safe

__all__ = ["cell_text", "column_decimals", "print_table", "table_columns", "to_csv", "to_json"]


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
    vals = [v for r in rows if isinstance(v := r.get(column), (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)]
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


def _numeric(rows: list[dict], column: str) -> bool:
    vals = [r.get(column) for r in rows if not _empty(r.get(column))]
    return bool(vals) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)


def _plain(title: str, columns: list[str], cells: list[list[str]], right: list[bool]) -> str:
    """Aligned text: title, header, a rule, one line per row; columns two spaces apart."""
    widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(columns)]

    def line(parts):
        return "  ".join(p.rjust(w) if r else p.ljust(w) for p, w, r in zip(parts, widths, right)).rstrip()

    out = [title, line(columns), "  ".join("-" * w for w in widths)] + [line(row) for row in cells]
    return "\n".join(out)


def _rich_table(title: str, columns: list[str], cells: list[list[str]], right: list[bool]):
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for c, r in zip(columns, right):
        table.add_column(c, justify="right" if r else "left", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    return table


def _width(console, table) -> int:
    """The width ``table`` needs with no cell wrapped (measured without the console's limit)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(1 << 16), table).maximum


def print_table(rows: list[dict], title: str, columns: list[str] | None = None, console=None) -> None:
    """Print ``rows`` (dicts) under ``title``; ``columns`` picks and orders them (default: all).

    Never wraps a cell: see the module docstring for narrow terminals and non-terminals.
    """
    from rich.console import Console

    console = console or Console()
    if not rows:
        console.print(f"{title}: no rows", markup=False, highlight=False)
        return
    columns = table_columns(rows, columns)
    decimals = {c: column_decimals(rows, c) for c in columns}
    cells = [[cell_text(row.get(c), c, decimals[c]) for c in columns] for row in rows]
    right = [_numeric(rows, c) for c in columns]
    if not console.is_terminal:
        console.print(_plain(title, columns, cells, right), markup=False, highlight=False, soft_wrap=True,
                      crop=False)
        return
    keep = len(columns)
    while keep > 1:
        table = _rich_table(title, columns[:keep], [r[:keep] for r in cells], right[:keep])
        if _width(console, table) <= console.width:
            break
        keep -= 1
    console.print(_rich_table(title, columns[:keep], [r[:keep] for r in cells], right[:keep]), crop=False)
    if keep < len(columns):
        console.print(f"({len(columns) - keep} column(s) left out to fit {console.width} columns: "
                      f"{', '.join(columns[keep:])}; a wider terminal, a pipe or --json shows them)",
                      markup=False, highlight=False)


def to_json(rows) -> str:
    """Strict JSON of a table (or any nesting of dicts/lists): NaN and inf become null."""
    return json.dumps(json_safe(rows), indent=2, default=str, allow_nan=False)


def to_csv(rows: list[dict], columns: list[str] | None = None) -> str:
    """CSV of ``rows``: the given columns, else every key in order of first appearance; NaN -> empty."""
    if not rows:
        return ""
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buf.getvalue()
