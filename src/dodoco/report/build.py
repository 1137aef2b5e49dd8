"""``dodoco report``: run directories -> DIR/report.html (self-contained) + DIR/fig-*.png + DIR/*.csv.

The report is a list of section functions (``SECTIONS``), each ``(runs, ctx) -> Section``. A section
whose data is absent raises ``SkipSection("why")`` (or a ``DodocoError``) and appears as a note; a
later module adds its own with ``register_section``. ``ReportContext`` caches what several sections
share (per-step Gini, EP scans, verdicts) so every quantity is computed once.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["Figure", "ReportContext", "ReportOptions", "SECTIONS", "Section", "SkipSection", "Table",
           "build_report", "register_section"]


class SkipSection(Exception):
    """Raised by a section whose data is absent; the message becomes the section's note."""


@dataclass
class Figure:
    name: str  # file stem, e.g. "ep-scan" -> fig-ep-scan.png
    png: bytes
    caption: str = ""


@dataclass
class Table:
    name: str  # file stem, e.g. "ep-invariance" -> ep-invariance.csv
    rows: list[dict]
    caption: str = ""
    columns: list[str] | None = None


@dataclass
class Section:
    title: str
    html: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """What the report computes. Defaults: docs/report.md."""

    batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    ep: tuple[int, ...] | None = None  # None: 4, 8, 16, 32 and larger powers of two up to E
    ep_batch: int | None = None  # None: largest B in 1, 2, 4, 8 with 32*B <= S, else 1
    placements: tuple[str, ...] = ("contiguous", "round_robin")
    ref_batch: int = 8
    threshold: float = 0.05
    low: float = 0.15
    high: float = 0.24
    groups: int = 2
    heatmap_runs: tuple[str, ...] = ()  # run paths or "model/condition" labels; () = every run
    max_heatmaps: int = 12
    seed: int = 0
    n_boot: int = 1000
    title: str = "DODOCO routing report"


class ReportContext:
    """Shared, cached inputs of the sections: runs, options, output folder, per-run computations."""

    def __init__(self, runs, options: ReportOptions, out: Path, attachments=()):
        self.runs = list(runs)
        self.options = options
        self.out = Path(out)
        self.attachments = [Path(a) for a in attachments]  # extra JSON (replay/simulate) for later sections
        self.cache: dict = {}
        self.verdicts: dict = {}

    def cached(self, key, compute: Callable):
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    @property
    def step_runs(self) -> list:
        """Runs with per-step data (not window aggregates)."""
        return [r for r in self.runs if r.granularity != "window"]

    def source(self, run):
        """The prefill StepSource of ``run`` (all sequences in step_order(S, seed)), built once and
        shared by the per-step Gini, the EP scan and the NeuSim comparison."""
        from dodoco.ep.steps import source_of

        return self.cached(("source", str(run.path)), lambda: source_of(run.counts, self.options.seed))

    def series(self, run):
        """GiniSeries of ``run`` at options.batches (computed once)."""
        from dodoco.findings.mock_real import GiniSeries, step_gini
        from dodoco.findings.runs import run_kind

        o = self.options
        return self.cached(("series", str(run.path)), lambda: GiniSeries(
            run.model, run.condition, run_kind(run), run.seq_len,
            step_gini(None, o.batches, o.seed, source=self.source(run)), str(run.path)))

    def ep_batch(self, run) -> int:
        if self.options.ep_batch:
            return self.options.ep_batch
        S = run.counts.shape[0]
        return max([b for b in (1, 2, 4, 8) if 32 * b <= S], default=1)

    def scan(self, run):
        """EP scan table of ``run`` at its ep_batch, for options.placements (computed once)."""
        from dodoco.findings.runs import scan_run

        o = self.options
        return self.cached(("scan", str(run.path)), lambda: scan_run(
            run, ep=o.ep, batch=[self.ep_batch(run)], placement=list(o.placements), seed=o.seed, n_boot=o.n_boot,
            source=self.source(run)))


#: The report's sections, in order. Each: (runs, ctx) -> Section.
SECTIONS: list[Callable] = []


def register_section(fn: Callable, *, before: str | None = None) -> Callable:
    """Add a section function (by default at the end; ``before`` names an existing function)."""
    if fn in SECTIONS:
        return fn
    names = [f.__name__ for f in SECTIONS]
    SECTIONS.insert(names.index(before) if before in names else len(SECTIONS), fn)
    return fn


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _run_section(fn, runs, ctx) -> Section:
    title = (fn.__doc__ or fn.__name__).strip().splitlines()[0].rstrip(".")
    try:
        return fn(runs, ctx)
    except (SkipSection, DodocoError) as exc:
        return Section(title, notes=[f"skipped: {exc}"])


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


def _unique(stem: str, used: set) -> str:
    name, i = stem, 2
    while name in used:
        name, i = f"{stem}-{i}", i + 1
    used.add(name)
    return name


def build_report(paths, out, options: ReportOptions | None = None, *, attachments=(), quiet: bool = True,
                 **overrides) -> Path:
    """Build the report of the runs at ``paths`` into folder ``out``; returns the report.html path."""
    import dodoco.report.sections  # noqa: F401  (registers the built-in sections)
    import dodoco.report.sections_dispatch  # noqa: F401
    import dodoco.report.sections_ep  # noqa: F401
    from dodoco.report.html import page
    from dodoco.store.atomic import write_bytes
    from dodoco.store.run import find_runs

    options = dataclasses.replace(options or ReportOptions(), **overrides)
    runs = find_runs(paths)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DodocoError(f"report output {out} is a file: give a folder with -o")
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(runs, options, out, attachments)
    rendered, used, anchors = [], set(), set()
    for fn in SECTIONS:
        t0 = time.perf_counter()
        section = _run_section(fn, runs, ctx)
        rendered.append((_unique(_slug(section.title), anchors), section.title, _render(section, out, used)))
        if not quiet:
            print(f"  {section.title}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    subtitle = f"{len(runs)} run(s); generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    doc = page(options.title, rendered, subtitle=subtitle)
    write_bytes(out / "report.html", doc.encode())
    ctx.cache.clear()
    from dodoco.store.atomic import write_json

    write_json(out / "verdicts.json", {k: v.to_dict() for k, v in ctx.verdicts.items()})
    return out / "report.html"
