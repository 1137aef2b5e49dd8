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

__all__ = [
    "SECTIONS",
    "Figure",
    "ReportContext",
    "ReportOptions",
    "Section",
    "SkipSection",
    "Table",
    "build_report",
    "judge_runs",
    "toy_caveat",
    "write_report",
]

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
    sections_dispatch.dry_run_section,
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


def _render(section: Section, files: dict, used: set) -> str:
    """The section's HTML; its figures and tables go to ``files`` {name: bytes} (written later)."""
    from dodoco.report.html import esc, figure_html, table_html
    from dodoco.report.tables import to_csv

    parts = [f'<p class="note">{esc(n)}</p>' for n in section.notes]
    parts.append(section.html)
    for fig in section.figures:
        name = _unique(f"fig-{_slug(fig.name)}", used) + ".png"
        files[name] = fig.png
        parts.append(figure_html(fig.png, alt=fig.caption or fig.name, caption=fig.caption, file_name=name))
    for tab in section.tables:
        name = _unique(_slug(tab.name), used) + ".csv"
        files[name] = to_csv(tab.rows, tab.columns).encode()
        parts.append(table_html(tab.rows, tab.columns, caption=tab.caption, csv_name=name))
    return "".join(parts)


def _progress(quiet: bool):
    from dodoco.progress import progress_bar

    return progress_bar("report: {task.description:<44}", elapsed=True, disable=quiet)


def judge_runs(runs, options, quiet: bool = True):
    """``dodoco.findings.judge`` with a progress line on stderr unless ``quiet``."""
    from rich.console import Console

    from dodoco.findings import judge

    if quiet:
        return judge(runs, options)
    with Console(stderr=True).status("judging the runs: per-step Gini, EP scans, verdicts"):
        return judge(runs, options)


def toy_caveat(runs) -> str | None:
    """The warning a report of built-in toy models carries at its top (None when it has none)."""
    toys = sorted({r.model for r in runs if str(r.model).startswith(("zoo:", "tiny:"))})
    if not toys:
        return None
    kinds = [
        k
        for k, p in (
            ("zoo: small models trained by DODOCO at toy width", "zoo:"),
            ("tiny: random, untrained routers", "tiny:"),
        )
        if any(t.startswith(p) for t in toys)
    ]
    return (
        f"Toy models: {', '.join(toys)} ({'; '.join(kinds)}). Their routing is a toy's: the numbers show what "
        "DODOCO measures and how, not findings about the real checkpoints they imitate."
    )


def write_report(findings, out, options: ReportOptions, *, attachments=(), quiet: bool = True) -> Path:
    """Render the report of judged runs (``findings``) into folder ``out``; returns report.html.

    ``attachments``: result files (paths, or already loaded ``Attachment``s), read and checked first
    (one-line DodocoError for a file that is not a replay or simulate result). The folder is owned
    (``report.folder``): only files an earlier report wrote are replaced, and those it wrote and this
    one does not are removed."""
    from dodoco.report.attachments import load_attachments
    from dodoco.report.folder import ReportFolder
    from dodoco.report.html import page
    from dodoco.report.tables import to_json

    folder = ReportFolder(out)
    folder.check(["report.html", "findings.json"])
    ctx = ReportContext(findings, options, folder.out, load_attachments(attachments))
    rendered, used, anchors, files = [], set(), set(), {}
    with _progress(quiet) as progress:
        task = progress.add_task("sections", total=len(SECTIONS))
        for fn in SECTIONS:
            progress.update(task, description=_title(fn)[:44])
            section = run_section(fn, ctx)
            rendered.append((_unique(_slug(section.title), anchors), section.title, _render(section, files, used)))
            progress.advance(task)
    subtitle = (
        f"{len(findings.runs)} run(s); generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
        "every number is computed from the runs' counts and the attached result files named in each section"
    )
    files["report.html"] = page(options.title, rendered, subtitle=subtitle, banner=toy_caveat(findings.runs)).encode()
    files["findings.json"] = to_json(findings.to_dict()).encode()
    folder.check(files)
    for name, data in files.items():
        folder.write(name, data)
    folder.finish()
    return folder.out / "report.html"


def build_report(
    runs, out, options: ReportOptions | None = None, *, attachments=(), quiet: bool = True, **overrides
) -> Path:
    """Judge ``runs`` (Run objects or paths) and build their report into folder ``out``; returns report.html.

    ``overrides`` are ReportOptions fields (``build_report(paths, "rep", n_boot=200)``). The output
    folder and the attachments are checked, and every run opened and read, before any work.
    """
    options = options or ReportOptions()
    if overrides:
        options = options.replace(**overrides)
    from dodoco.report.attachments import load_attachments
    from dodoco.report.folder import ReportFolder

    ReportFolder(out).check(["report.html", "findings.json"])
    loaded = load_attachments(attachments)
    findings = judge_runs(runs, options, quiet)
    return write_report(findings, out, options, attachments=loaded, quiet=quiet)
