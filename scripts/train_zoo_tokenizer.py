#!/usr/bin/env python
"""Train the zoo's shared tokenizer: a byte-level BPE on the bundled *train* text of all four domains.

Run from the repository root with the repository's virtual environment:

    .venv/bin/python scripts/train_zoo_tokenizer.py [--vocab-size 8192]

Writes src/dodoco/data/zoo/tokenizer.json. Why not a real model's tokenizer: Qwen3's 151,669 tokens
at hidden size 64 would put ~9.7M parameters (19 MB in bf16) in the embedding of *each* zoo model,
so five models could not stay under the 25 MB the package allows; an 8,192-token BPE costs 0.5M
parameters per model. Only the train split is read, so held-out text is never seen by the
tokenizer either. Byte-level: every UTF-8 string (Japanese, Chinese, code) is encodable.

The zoo models are tied to the tokenizer they were trained with (its sha256 is in each model card):
after retraining it, retrain the zoo. ``--check`` says whether the shipped file is what the current
text gives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from dodoco.conditions.samples import DOMAINS, load_documents  # noqa: E402
from dodoco.store.atomic import write_bytes  # noqa: E402

EOS = "<|endoftext|>"


def train(vocab_size: int):
    """The trained ``tokenizers.Tokenizer`` (deterministic: documents in file order, one thread)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [t for d in DOMAINS for t in load_documents(d, "train")]
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--out", default=str(REPO / "src/dodoco/data/zoo/tokenizer.json"))
    p.add_argument(
        "--check",
        action="store_true",
        help="train, write nothing, and say whether the result equals --out byte for byte",
    )
    args = p.parse_args(argv)
    import os

    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one thread: the merge order is reproducible
    tok = train(args.vocab_size)
    if args.check:
        same = Path(args.out).is_file() and Path(args.out).read_bytes() == tok.to_str(pretty=False).encode("utf-8")
        print(f"{args.out} {'equals' if same else 'differs from'} a tokenizer trained on the current train text")
        return 0 if same else 1
    write_bytes(Path(args.out), tok.to_str(pretty=False).encode("utf-8"))
    counts = {d: sum(len(e.ids) for e in tok.encode_batch(load_documents(d, "train"))) for d in DOMAINS}
    print(f"wrote {args.out}: {tok.get_vocab_size()} tokens; train tokens per domain {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
