"""dodoco zoo: train the five small MoE models (``zoo train``) and list the shipped ones (``zoo ls``)."""

from __future__ import annotations

from dodoco.commands import add_flags, add_switch, add_json_flag, add_out_flag, add_seed_flag

LS_COLUMNS = ["family", "mixer", "status", "steps", "heldout_loss", "heldout_ppl", "balance", "mb"]


def register(sub) -> None:
    from dodoco.config import add_config_flag

    p = sub.add_parser("zoo", help="train or list the zoo: small trained MoE models, one per sequence mixer")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    t = zsub.add_parser("train", help="train zoo models on the bundled train text (CPU slowly, or a GPU)")
    which = t.add_mutually_exclusive_group()
    which.add_argument("--family", help="one family: deepseek_v2, deepseek_moe, qwen3_moe, nemotron_h, qwen3_5_moe")
    add_switch(which, "--all", "all five families")
    add_flags(
        t,
        """
        --steps       int   optimizer steps (default 1200)
        --batch-size  int   sequences per optimizer step (default 32)
        --seq-len     int   tokens per sequence (default 256)
        --lr          float peak learning rate (default 3e-3)
        --warmup      int   warm-up steps (default 100)
        --data        str   folder of <domain>.jsonl[.gz] with split/text fields (default: the bundled text)
        --time-budget float seconds per family: fewer steps if --steps would not fit (chosen after warm-up)
        --log-every   int   steps per log line (default 50)
        --eval-every  int   steps per held-out evaluation (default 400)
        --save-every  int   steps per checkpoint for --resume (default 200)
        --note        str   a sentence for the model card (how the run was set up)
    """,
    )
    add_seed_flag(t, "the training batches and initial weights")
    t.add_argument("--device", help="cpu (default), cuda, cuda:1, ...")
    add_out_flag(t, "output folder, one subfolder per family (default runs/zoo)", metavar="DIR")
    add_switch(t, "--resume", "continue from OUT/<family>/checkpoint.pt")
    add_json_flag(t, "one row per trained model (the zoo ls columns)")
    add_config_flag(t)
    t.set_defaults(func=run_train)
    ls = zsub.add_parser("ls", help="list the zoo models (shipped, or those in --dir)")
    ls.add_argument("--dir", help="a folder written by dodoco zoo train (default: the shipped zoo)")
    add_json_flag(ls, "the table")
    add_out_flag(ls, "write the same JSON document to this file")
    add_config_flag(ls)
    ls.set_defaults(func=run_ls)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def run_train(args) -> int:
    import functools
    import sys

    from dodoco.commands import check_output_file, emit
    from dodoco.training.card import zoo_rows
    from dodoco.training.config import ZooTrainConfig
    from dodoco.training.train import Data, train_family

    cfg = ZooTrainConfig.from_args(args)
    check_output_file(cfg.json)
    families, opts = cfg.families(), cfg.run_options()
    data = functools.cache(lambda: Data(cfg.data))  # tokenized once, after the checks of the first family

    def log(message: str) -> None:  # progress: a diagnostic, on stderr
        print(message, file=sys.stderr, flush=True)

    for family in families:
        train_family(cfg.train_config(family), opts, data, log=log)
    rows = [r for r in zoo_rows(cfg.out) if r["family"] in families]
    emit(
        rows,
        f"trained zoo models in {cfg.out}",
        json_path=cfg.json,
        columns=LS_COLUMNS,
        keep=["family", "steps", "heldout_loss"],
    )
    return 0


def run_ls(args) -> int:
    from dodoco.commands import check_output_file, show, write_doc
    from dodoco.training.card import zoo_rows
    from dodoco.training.config import ZooLsConfig

    cfg = ZooLsConfig.from_args(args)
    check_output_file(cfg.json)
    check_output_file(cfg.out, "--out")
    rows = zoo_rows(cfg.dir)
    show(
        rows,
        "zoo models (use as zoo:<family>)",
        cfg.json,
        columns=LS_COLUMNS,
        keep=["family", "status", "steps", "heldout_loss"],
    )
    write_doc(rows, cfg.json, cfg.out)
    return 0
