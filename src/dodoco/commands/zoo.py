"""dodoco zoo: train the five small MoE models (``zoo train``) and list the shipped ones (``zoo ls``)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("zoo", help="train or list the zoo: small trained MoE models, one per sequence mixer")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    t = zsub.add_parser("train", help="train zoo models on the bundled train text (CPU slowly, or a GPU)")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--family", help="one family: deepseek_v2, deepseek_moe, qwen3_moe, nemotron_h, qwen3_5_moe")
    which.add_argument("--all", action="store_true", help="all five families, one after another")
    t.add_argument("--steps", type=int, default=1200, help="optimizer steps (default 1200)")
    t.add_argument("--batch-size", type=int, default=32, help="sequences per step (default 32)")
    t.add_argument("--seq-len", type=int, default=256, help="tokens per sequence (default 256)")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    t.add_argument("--warmup", type=int, default=100, help="warm-up steps (default 100)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    t.add_argument("-o", "--out", default="runs/zoo", help="output folder, one subfolder per family (default runs/zoo)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/<family>/checkpoint.pt")
    t.add_argument("--data", default=None, help="folder of <domain>.jsonl[.gz] with split/text fields "
                                                "(default: the bundled text)")
    t.add_argument("--time-budget", type=float, default=0.0,
                   help="seconds per family: fewer steps if --steps would not fit (chosen after warm-up)")
    t.add_argument("--log-every", type=int, default=50, help="steps per log line (default 50)")
    t.add_argument("--eval-every", type=int, default=400, help="steps per held-out evaluation (default 400)")
    t.add_argument("--save-every", type=int, default=200, help="steps per checkpoint for --resume (default 200)")
    t.add_argument("--note", default="", help="a sentence for the model card (how the run was set up)")
    t.set_defaults(func=run_train)
    ls = zsub.add_parser("ls", help="list the zoo models (shipped, or those in --dir)")
    ls.add_argument("--dir", default=None, help="a folder written by dodoco zoo train (default: the shipped zoo)")
    ls.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON ('-' for stdout)")
    ls.set_defaults(func=run_ls)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def _check(args) -> None:
    from dodoco.errors import DodocoError

    for name in ("steps", "batch_size", "seq_len", "warmup", "log_every", "eval_every", "save_every"):
        if getattr(args, name) < 1:
            raise DodocoError(f"--{name.replace('_', '-')} {getattr(args, name)} must be a positive integer")
    if args.warmup >= args.steps:
        raise DodocoError(f"--warmup {args.warmup} must be smaller than --steps {args.steps}")
    if args.lr <= 0 or args.time_budget < 0:
        raise DodocoError(f"--lr {args.lr} must be > 0 and --time-budget {args.time_budget} >= 0")


def run_train(args) -> int:
    import functools
    from pathlib import Path

    from dodoco.models.load import _resolve_device
    from dodoco.models.zoo import ZOO, spec
    from dodoco.training.train import Data, RunOptions, TrainConfig, train_family

    _check(args)
    families = list(ZOO) if args.all else [spec(args.family).family]
    opts = RunOptions(out=Path(args.out), device=_resolve_device(args.device), resume=args.resume,
                      data_dir=args.data, time_budget=args.time_budget, log_every=args.log_every,
                      eval_every=args.eval_every, save_every=args.save_every, note=args.note)
    data = functools.cache(lambda: Data(args.data))  # tokenized once, after the checks of the first family
    for family in families:
        cfg = TrainConfig(family, steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                          warmup=args.warmup, seed=args.seed)
        train_family(cfg, opts, data, log=lambda m: print(m, flush=True))
    return 0


def run_ls(args) -> int:
    from dodoco.commands import check_output_file, emit
    from dodoco.training.card import zoo_rows

    check_output_file(args.json)
    rows = zoo_rows(args.dir)
    emit(rows, "zoo models (use as zoo:<family>)", json_path=args.json,
         columns=["family", "mixer", "status", "steps", "heldout_loss", "heldout_ppl", "balance", "mb"])
    return 0
