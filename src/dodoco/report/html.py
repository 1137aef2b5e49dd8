"""HTML of the report: escaping, tables, embedded figures, the page. One self-contained file:
figures are base64 PNG data URIs, styles are inline, no script and no external resource."""

from __future__ import annotations

import base64
import html
import math

__all__ = ["esc", "figure_html", "page", "table_html", "verdict_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:1.2rem 1.6rem 3rem}
h1{font-size:1.6rem;margin:.4rem 0}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1.02rem;margin:1.2rem 0 .4rem}
nav ol{columns:2;font-size:.9rem}
table{border-collapse:collapse;font-size:.78rem;margin:.4rem 0 1rem;background:#fff}
th,td{border:1px solid #ddd;padding:.18rem .45rem;text-align:right;white-space:nowrap}
th{background:#f0f0f3;position:sticky;top:0}td.s,th.s{text-align:left}
.scroll{max-height:420px;overflow:auto;display:inline-block;max-width:100%}
figure{margin:.8rem 0 1.2rem}figure img{max-width:100%;height:auto;border:1px solid #e3e3e3;background:#fff}
figcaption{font-size:.82rem;color:#555}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.4rem .7rem;font-size:.88rem}
.verdict{background:#eef6ff;border-left:4px solid #2f6fdd;padding:.5rem .8rem;margin:.6rem 0}
.verdict b{font-size:1.05rem}.small{font-size:.8rem;color:#666}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _cell(value) -> tuple[str, bool]:
    """(text, is_number) of one table cell."""
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, float):
        if math.isnan(value):
            return "–", True
        return (f"{value:.4g}" if abs(value) < 1e4 else f"{value:.4e}"), True
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)), False
    return ("" if value is None else str(value)), False


def table_html(rows: list[dict], columns: list[str] | None = None, *, caption: str | None = None,
               csv_name: str | None = None, max_rows: int = 400) -> str:
    """An HTML table of ``rows`` (dicts), numbers right-aligned, NaN as a dash; at most ``max_rows``
    rows are shown (the CSV holds all)."""
    if not rows:
        return f'<p class="small">{esc(caption or "table")}: no rows</p>'
    columns = columns or list(rows[0])
    head = "".join(f'<th class="s">{esc(c)}</th>' for c in columns)
    body = []
    for row in rows[:max_rows]:
        cells = []
        for c in columns:
            text, num = _cell(row.get(c))
            cells.append(f"<td>{esc(text)}</td>" if num else f'<td class="s">{esc(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f" (first {max_rows} of {len(rows)} rows)" if len(rows) > max_rows else ""
    link = f' <a href="{esc(csv_name)}">CSV</a>' if csv_name else ""
    cap = f'<p class="small">{esc(caption or "")}{esc(more)}{link}</p>'
    return f'{cap}<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def figure_html(data: bytes, *, alt: str, caption: str = "", file_name: str | None = None) -> str:
    """A figure embedded as a base64 PNG data URI (self-contained), with its caption."""
    b64 = base64.b64encode(data).decode("ascii")
    link = f' <a href="{esc(file_name)}">PNG</a>' if file_name else ""
    return (f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{esc(caption)}{link}</figcaption></figure>")


def verdict_html(title: str, verdict: str, detail: str = "") -> str:
    return f'<div class="verdict">{esc(title)}: <b>{esc(verdict)}</b><br><span class="small">{esc(detail)}</span></div>'


def page(title: str, sections: list[tuple[str, str, str]], *, subtitle: str = "") -> str:
    """The whole document from sections [(anchor id, heading, body html)]."""
    toc = "".join(f'<li><a href="#{esc(a)}">{esc(h)}</a></li>' for a, h, _ in sections)
    body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{b}</section>' for a, h, b in sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
            f'<h1>{esc(title)}</h1><p class="small">{esc(subtitle)}</p><nav><ol>{toc}</ol></nav>{body}'
            f"</main></body></html>\n")
