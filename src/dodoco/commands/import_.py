"""dodoco import: engine expert-load dumps (SGLang, vLLM, Megatron, tables, arrays) -> a run directory.

Flags are the fields of ``dodoco.ingest.ImportConfig`` (also from ``--config FILE.toml``); defaults live
there, so the parser leaves them unset."""

from dodoco.commands import add_flags, add_json_flag


def register(sub) -> None:
    import argparse

    from dodoco.config import add_config_flag
    from dodoco.ingest import FORMATS

    formats = "\n".join(f"  {e.name:13s} {e.summary}" for e in FORMATS.entries())
    p = sub.add_parser(
        "import",
        help="import expert-load dumps of SGLang, vLLM, Megatron or plain tables",
        description="Import expert-load dumps into a run directory (docs/ingest.md says how to "
        "obtain each).\n\nformats:\n" + formats,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", metavar="FORMAT", help=", ".join(FORMATS.names()))
    p.add_argument("paths", nargs="+", metavar="PATH", help="dump files, or folders holding them")
    p.add_argument("-o", "--out", required=True, metavar="RUN", help="run directory to write")
    add_flags(
        p,
        """
        --model-id       str  model the dumps come from (e.g. deepseek-ai/DeepSeek-V3)
        --condition      str  condition name of the run (default: production)
        --seq-len        int  sequence length to record (default 0: not applicable)
        --layer-ids      ints model layer id of each dumped layer, e.g. 3,4,5
        --num-experts    int  logical experts E, where the dump lacks it (also allows ids far beyond the others)
        --top-k          int  experts per token K, where the dump lacks it
        --ranks          ints keep only these ranks' records, e.g. 0 or 0,8
        --ep-size        int  megatron-tpe: expert-parallel size
        --expert-tp-size int  megatron-tpe: expert tensor-parallel size (1)
        --engine-version str  engine version to record, where the dump lacks it
    """,
    )
    p.add_argument(
        "--split-ranks", action="store_true", default=None, help="one row per (pass, rank) instead of ranks summed"
    )
    p.add_argument("--as-window", action="store_true", default=None, help="sum every row into one aggregate window")
    p.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace a different imported run in RUN (never other files)",
    )
    add_json_flag(p, "the summary of the imported run")
    add_config_flag(p)
    p.set_defaults(func=run)


def summary_rows(man, out) -> list[dict]:
    """Key/value rows describing an imported run (what the console shows)."""
    r, d = man.routing, man.details
    src = d["source"]
    excluded = ", ".join(str(x["layer"]) for x in d["excluded_layers"]) or "none"
    rows = [
        ("run", str(out)),
        ("format", f"{src['format']} ({src['mode']})"),
        ("engine version", src.get("engine_version") or "unknown"),
        ("files", len(src["files"])),
        ("granularity", man.granularity.value),
        ("rows", f"{man.sequences}: {d['rows']}"),
        ("MoE layers L", r.L),
        ("experts E", r.E),
        ("top-k K", r.K if r.K else "unknown"),
        ("excluded layers", excluded),
        ("dropped empty rows", d["dropped_rows"]["count"]),
    ]
    rows += [("note", n) for n in d["notes"]]
    return [{"field": k, "value": v} for k, v in rows]


def run(args) -> int:
    from dodoco.commands import check_output_file, emit, note
    from dodoco.ingest import ImportConfig, import_dump

    cfg = ImportConfig.from_args(args)
    check_output_file(args.json)  # before the import, not after it
    man = import_dump(cfg)
    emit(
        summary_rows(man, cfg.out), "imported", json_path=args.json, columns=["field", "value"], keep=["field", "value"]
    )
    if man.granularity.value == "window":
        note(
            "granularity 'window': every analysis treats the window as one step of known tokens and flags "
            "results that rest on it; import per-pass dumps for batch-size trends and intervals"
        )
    return 0
