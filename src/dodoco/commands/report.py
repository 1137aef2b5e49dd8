"""dodoco report: run directories -> one self-contained HTML report, PNG figures, CSV tables, findings.json."""

from dodoco.commands import add_switch, add_json_flag, add_out_flag


def register(sub) -> None:
    from dodoco.commands import csv_strs
    from dodoco.commands.findings import add_findings_flags

    p = sub.add_parser("report", help="HTML report (verdicts in sentences, figures, tables) of run directories")
    add_findings_flags(p)
    written = "report.html, fig-*.png, *.csv, findings.json; only files an earlier report wrote are replaced"
    add_out_flag(p, f"output folder ({written})", metavar="DIR")
    p.add_argument(
        "--heatmap",
        type=csv_strs,
        metavar="RUNS",
        help="runs to draw heatmaps for (paths or model/condition; default: every run of up to 8 models)",
    )
    p.add_argument(
        "--attach",
        nargs="+",
        metavar="JSON",
        help="replay or simulate result files for the dispatch-cost sections (checked before any work)",
    )
    p.add_argument("--title", help="the report's title")
    add_json_flag(p, "the verdict table")
    add_switch(p, "--quiet", "no progress on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    from dodoco.commands import check_output_file, emit, note
    from dodoco.commands.findings import verdict_rows
    from dodoco.report.attachments import load_attachments
    from dodoco.report.build import judge_runs, write_report
    from dodoco.report.folder import ReportFolder
    from dodoco.report.options import ReportConfig

    cfg = ReportConfig.from_args(args)
    check_output_file(cfg.json)
    ReportFolder(cfg.out).check(["report.html", "findings.json"])
    attached = load_attachments(cfg.attach)
    findings = judge_runs(cfg.runs, cfg, cfg.quiet)
    path = write_report(findings, cfg.out, cfg.report_options(), attachments=attached, quiet=cfg.quiet)
    note(str(path), "report: ")
    emit(
        verdict_rows(findings),
        "verdicts",
        json_path=cfg.json,
        columns=["finding", "verdict"],
        keep=["finding", "verdict"],
    )
    return 0
