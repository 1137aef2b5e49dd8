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
        table.add_column(c, justify="right" if isinstance(rows[0].get(c), (int, float)) else "left")
    for row in rows:
        table.add_row(*(_fmt(row.get(c, "")) for c in columns))
    console.print(table)


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))


def to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
