"""dodoco findings: the three verdicts of run directories, in sentences with numbers and intervals."""

from dodoco.commands import add_flags, add_batch_flag, add_json_flag, add_out_flag, add_seed_flag


def add_findings_flags(p) -> None:
    """The flags of ``FindingsOptions`` (shared by ``findings`` and ``report``); defaults live in the config."""
    from dodoco.config import add_config_flag

    p.add_argument("runs", nargs="*", help="run directories, or folders holding them")
    add_batch_flag(p, many=True, default="1,2,4,8,16,32; the per-step Gini's steps are of B sequences")
    add_flags(
        p,
        """
        --ep        ints  EP degrees N of the scan (default 4,8,16,32 and larger powers of two up to E)
        --ep-batch  int   --batch of the EP scan: sequences per rank per step B (default: per run, the largest of
                          1,2,4,8 leaving 3 steps at the largest N)
        --placement strs  placements scanned, the first is the baseline (default contiguous,round_robin,eplb)
        --ref-batch int   batch of the bands and the ratio (default 8)
        --threshold float EP invariance: largest relative change called intrinsic (default 0.05)
        --low       float data-resilient: prose Gini <= LOW (default 0.15)
        --high      float persistently concentrated: every real-text Gini >= HIGH (default 0.24)
        --groups    int   data-derived groups of the bands (default 2)
    """,
    )
    add_seed_flag(p)
    add_config_flag(p)


def register(sub) -> None:
    p = sub.add_parser("findings", help="the verdicts (EP invariance, mock vs real, bands) in sentences")
    add_findings_flags(p)
    add_json_flag(p, "every verdict with its tables and sentences")
    add_out_flag(p, "write the same JSON document (findings.json) to this file")
    p.set_defaults(func=run)


def verdict_rows(findings) -> list[dict]:
    """One row per finding: its verdict, or why it was not judged."""
    from dodoco.findings.judge import FINDINGS

    return [
        {
            "finding": n,
            "verdict": findings.verdicts[n].verdict if n in findings.verdicts else f"not judged: {findings.skipped[n]}",
        }
        for n in FINDINGS
    ]


def run(args) -> int:
    from dodoco.commands import check_output_file, nothing_to_do, say, show, write_doc
    from dodoco.findings import FindingsConfig
    from dodoco.report.build import judge_runs

    cfg = FindingsConfig.from_args(args)
    check_output_file(cfg.json)
    check_output_file(cfg.out, "--out")
    f = judge_runs(cfg.runs, cfg, quiet=False)
    show(verdict_rows(f), "verdicts", cfg.json, keep=["finding", "verdict"])
    for s in f.sentences:
        say(s, cfg.json, bullet="- ")
    write_doc(f.to_dict(), cfg.json, cfg.out)
    if not f.verdicts:
        return nothing_to_do("no finding could be judged on these runs (the table says why)")
    return 0
