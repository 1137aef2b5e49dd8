"""HTML of the report: escaping, tables, embedded figures, the page. One self-contained file:
figures are base64 PNG data URIs, styles are inline, no script and no external resource."""

from __future__ import annotations

import base64
import html

__all__ = ["esc", "figure_html", "page", "table_html", "verdict_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:1.2rem 1.6rem 3rem}
h1{font-size:1.6rem;margin:.4rem 0}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{font-size:1.02rem;margin:1.2rem 0 .4rem}
nav ol{columns:2;font-size:.9rem}
table{border-collapse:collapse;font-size:.78rem;margin:.4rem 0 1rem;background:#fff}
th,td{border:1px solid #ddd;padding:.18rem .45rem;white-space:nowrap}
th{background:#f0f0f3;position:sticky;top:0}.s{text-align:left}.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:420px;overflow:auto;display:inline-block;max-width:100%}
figure{margin:.8rem 0 1.2rem}figure img{max-width:100%;height:auto;border:1px solid #e3e3e3;background:#fff}
figcaption{font-size:.82rem;color:#555}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.4rem .7rem;font-size:.88rem}
.verdict{background:#eef6ff;border-left:4px solid #2f6fdd;padding:.5rem .8rem;margin:.6rem 0}
.verdict b{font-size:1.05rem}.verdict ul{margin:.3rem 0 .2rem;padding-left:1.2rem;font-size:.9rem}
.verdict li{margin:.15rem 0}.small{font-size:.8rem;color:#666}
.caveat{background:#fdecea;border-left:5px solid #c62828;padding:.55rem .8rem;font-size:.95rem;margin:.6rem 0}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def table_html(
    rows: list[dict],
    columns: list[str] | None = None,
    *,
    caption: str | None = None,
    csv_name: str | None = None,
    max_rows: int = 400,
) -> str:
    """An HTML table of ``rows`` (dicts): every column that has a value in some row (``columns``
    picks and orders them; default all keys of all rows), numbers right-aligned with one number of
    decimals per column (whole-number columns as integers), NaN as a dash; columns holding one value
    in every row (of two rows or more) are said once under the caption ("every row: ..."); a
    ``provenance`` dict as ``<term>_label`` columns; at most ``max_rows`` rows are shown (the CSV
    holds all)."""
    from dodoco.report.tables import cell_text, column_decimals, flatten_provenance, table_columns

    if not rows:
        return f'<p class="small">{esc(caption or "table")}: no rows</p>'
    rows, columns = flatten_provenance(rows, columns)
    columns = table_columns(rows, columns)
    decimals = {c: column_decimals(rows, c) for c in columns}
    text = {c: [cell_text(r.get(c), c, decimals[c]) for r in rows] for c in columns}
    const = [c for c in columns if len(rows) > 1 and len(set(text[c])) == 1][: len(columns) - 1]
    shown = [c for c in columns if c not in const]
    head = "".join(f'<th class="{"n" if decimals[c] is not None else "s"}">{esc(c)}</th>' for c in shown)
    body = [
        "<tr>"
        + "".join(f'<td class="{"n" if decimals[c] is not None else "s"}">{esc(text[c][i])}</td>' for c in shown)
        + "</tr>"
        for i in range(min(len(rows), max_rows))
    ]
    more = f" (first {max_rows} of {len(rows)} rows)" if len(rows) > max_rows else ""
    link = f' <a href="{esc(csv_name)}">CSV</a>' if csv_name else ""
    every = ("<br>every row: " + esc(", ".join(f"{c} {text[c][0]}" for c in const))) if const else ""
    cap = f'<p class="small">{esc(caption or "")}{esc(more)}{link}{every}</p>'
    return f'{cap}<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def figure_html(data: bytes, *, alt: str, caption: str = "", file_name: str | None = None) -> str:
    """A figure embedded as a base64 PNG data URI (self-contained), with its caption."""
    b64 = base64.b64encode(data).decode("ascii")
    link = f' <a href="{esc(file_name)}">PNG</a>' if file_name else ""
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{esc(caption)}{link}</figcaption></figure>"
    )


def verdict_html(title: str, verdict: str, sentences: list[str] = (), notes: list[str] = ()) -> str:
    """A verdict box: the verdict in bold, then its sentences as a list, then notes."""
    items = "".join(f"<li>{esc(s)}</li>" for s in sentences)
    notes_html = "".join(f'<p class="small">{esc(n)}</p>' for n in notes)
    return (
        f'<div class="verdict">{esc(title)}: <b>{esc(verdict)}</b>'
        f"{f'<ul>{items}</ul>' if items else ''}{notes_html}</div>"
    )


def page(title: str, sections: list[tuple[str, str, str]], *, subtitle: str = "", banner: str | None = None) -> str:
    """The whole document from sections [(anchor id, heading, body html)]; ``banner``: a caveat shown
    at the top, under the title (e.g. that the models are toys)."""
    toc = "".join(f'<li><a href="#{esc(a)}">{esc(h)}</a></li>' for a, h, _ in sections)
    body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{b}</section>' for a, h, b in sections)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="small">{esc(subtitle)}</p>'
        f"{f'<p class=caveat><b>{esc(banner)}</b></p>' if banner else ''}<nav><ol>{toc}</ol></nav>{body}"
        f"</main></body></html>\n"
    )
