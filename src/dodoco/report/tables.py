"""Terminal tables (rich) and their JSON/CSV forms: every table DODOCO prints can also be saved."""

from __future__ import annotations

import csv
import io
import json
import math


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def print_table(rows: list[dict], title: str, columns: list[str] | None = None, console=None) -> None:
    """Print ``rows`` (dicts) as a rich table with the given columns (default: keys of the first row)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not rows:
        console.print(f"[yellow]{title}: no rows[/yellow]")
        return
    columns = columns or list(rows[0])
    table = Table(title=title, show_lines=False)
    for c in columns:
        numeric = isinstance(rows[0].get(c), (int, float))
        table.add_column(c, justify="right" if numeric else "left", overflow="fold", no_wrap=False)
    for row in rows:
        table.add_row(*(_fmt(row.get(c, "")) for c in columns))
    console.print(table)


def json_safe(obj):
    """NaN/inf -> None and numpy scalars -> Python, so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        return json_safe(obj.item())
    return obj


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
