"""``dodoco report``: runs -> DIR/report.html (self-contained) + DIR/fig-*.png + DIR/*.csv + DIR/findings.json.

``build_report`` judges the runs once (``dodoco.findings.judge``) and renders ``SECTIONS``, an
explicit ordered tuple of section functions, each ``(ctx) -> Section`` reading the shared
``ReportContext``. A section whose data is absent raises ``SkipSection("why")`` (or a
``DodocoError``) and appears as a heading with that note. To add a section: write the function in
a ``report/sections*.py`` module and put it in ``SECTIONS`` (docs/report.md).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from dodoco.errors import DodocoError
from dodoco.report.context import ReportContext
from dodoco.report.options import ReportOptions
from dodoco.report.section import Figure, Section, SkipSection, Table
from dodoco.report import sections, sections_dispatch, sections_ep, sections_load, sections_traces

__all__ = ["SECTIONS", "Figure", "ReportContext", "ReportOptions", "Section", "SkipSection", "Table",
           "build_report", "judge_runs", "write_report"]

#: The report's sections, in order. Each: (ctx) -> Section.
SECTIONS = (
    sections.provenance,
    sections.verdicts,
    sections.ep_invariance_section,
    sections.mock_real_section,
    sections.bands_section,
    sections_load.gini_matrix_section,
    sections_load.heatmap_section,
    sections_load.lorenz_section,
    sections_ep.mitigations_section,
    sections_ep.neusim_section,
    sections_ep.decode_section,
    sections_traces.coactivation_section,
    sections_traces.affinity_section,
    sections_traces.trace_placements_section,
    sections_traces.rebalance_section,
    sections_dispatch.replay_section,
    sections_dispatch.simulate_section,
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _title(fn) -> str:
    return (fn.__doc__ or fn.__name__).strip().splitlines()[0].rstrip(".")


def run_section(fn, ctx) -> Section:
    """``fn(ctx)``, or a Section holding only the note when it is skipped."""
    try:
        return fn(ctx)
    except (SkipSection, DodocoError) as exc:
        return Section(_title(fn), notes=[f"skipped: {exc}"])


def _unique(stem: str, used: set) -> str:
    name, i = stem, 2
    while name in used:
        name, i = f"{stem}-{i}", i + 1
    used.add(name)
    return name


def _render(section: Section, out: Path, used: set) -> str:
    from dodoco.report.html import esc, figure_html, table_html
    from dodoco.report.tables import to_csv
    from dodoco.store.atomic import write_bytes

    parts = [f'<p class="note">{esc(n)}</p>' for n in section.notes]
    parts.append(section.html)
    for fig in section.figures:
        name = _unique(f"fig-{_slug(fig.name)}", used) + ".png"
        write_bytes(out / name, fig.png)
        parts.append(figure_html(fig.png, alt=fig.caption or fig.name, caption=fig.caption, file_name=name))
    for tab in section.tables:
        name = _unique(_slug(tab.name), used) + ".csv"
        write_bytes(out / name, to_csv(tab.rows, tab.columns).encode())
        parts.append(table_html(tab.rows, tab.columns, caption=tab.caption, csv_name=name))
    return "".join(parts)


def _progress(quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("report: {task.description:<44}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), disable=quiet, transient=False)


def judge_runs(runs, options, quiet: bool = True):
    """``dodoco.findings.judge`` with a progress line on stderr unless ``quiet``."""
    from rich.console import Console

    from dodoco.findings import judge

    if quiet:
        return judge(runs, options)
    with Console(stderr=True).status("judging the runs: per-step Gini, EP scans, verdicts"):
        return judge(runs, options)


def write_report(findings, out, options: ReportOptions, *, attachments=(), quiet: bool = True) -> Path:
    """Render the report of judged runs (``findings``) into folder ``out``; returns report.html."""
    from dodoco.report.html import page
    from dodoco.store.atomic import write_bytes, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(findings, options, out, attachments)
    rendered, used, anchors = [], set(), set()
    with _progress(quiet) as progress:
        task = progress.add_task("sections", total=len(SECTIONS))
        for fn in SECTIONS:
            progress.update(task, description=_title(fn)[:44])
            section = run_section(fn, ctx)
            rendered.append((_unique(_slug(section.title), anchors), section.title, _render(section, out, used)))
            progress.advance(task)
    subtitle = (f"{len(findings.runs)} run(s); generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
                "every number is computed from the runs' counts and the attached result files named in each section")
    write_bytes(out / "report.html", page(options.title, rendered, subtitle=subtitle).encode())
    write_json(out / "findings.json", _json_ready(findings.to_dict()))
    return out / "report.html"


def build_report(runs, out, options: ReportOptions | None = None, *, attachments=(), quiet: bool = True,
                 **overrides) -> Path:
    """Judge ``runs`` (Run objects or paths) and build their report into folder ``out``; returns report.html.

    ``overrides`` are ReportOptions fields (``build_report(paths, "rep", n_boot=200)``). The output
    folder and the attachments are checked, and every run opened and read, before any work.
    """
    options = options or ReportOptions()
    if overrides:
        options = options.replace(**overrides)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DodocoError(f"report output {out} is a file: give a folder with -o")
    missing = [str(a) for a in attachments if not Path(a).is_file()]
    if missing:
        raise DodocoError(f"--attach {missing[0]} does not exist: give a replay or simulate JSON file")
    findings = judge_runs(runs, options, quiet)
    return write_report(findings, out, options, attachments=attachments, quiet=quiet)


def _json_ready(obj):
    from dodoco.store.atomic import json_safe

    return json_safe(obj)
