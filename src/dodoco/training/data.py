"""Training data of the zoo: the *train* split of the four bundled domains, mixed, in seeded windows.

Each domain's train documents are tokenized with the zoo tokenizer and joined with the
end-of-document token into one stream. An epoch cuts every stream into ``seq_len`` windows from a
seeded offset in ``[0, seq_len)`` (so windows move between epochs), pools the windows of all four
domains (a domain weighs by its token count) and shuffles them with a seeded permutation. Step s
takes windows ``s*B .. s*B+B-1`` of that endless sequence of epochs, so a batch depends only on
(seed, step): training is reproducible and resumable. Held-out text is read only for evaluation.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError

DOMAINS = ("prose", "code", "math", "multilingual")


def read_texts(split: str, data_dir: str | None = None) -> dict[str, list[str]]:
    """Documents of ``split`` per domain: bundled (``data_dir`` None) or ``DIR/<domain>.jsonl[.gz]``.

    A folder's files hold one JSON object per line with "split" ("train"/"heldout") and "text".
    """
    if data_dir is None:
        from dodoco.conditions.samples import load_documents

        return {d: load_documents(d, split) for d in DOMAINS}
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DodocoError(
            f"training data folder '{data_dir}' does not exist: give a folder with "
            f"{', '.join(d + '.jsonl[.gz]' for d in DOMAINS)}, or omit --data for the bundled text"
        )
    texts = {}
    for d in DOMAINS:
        path = next((p for p in (root / f"{d}.jsonl.gz", root / f"{d}.jsonl") if p.is_file()), None)
        if path is None:
            raise DodocoError(
                f"training data for domain '{d}' is missing: expected {root / (d + '.jsonl.gz')} "
                f'or {root / (d + ".jsonl")} with lines {{"split": ..., "text": ...}}'
            )
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        texts[d] = [r["text"] for r in rows if r.get("split") == split and r.get("text")]
    return texts


def tokenize(texts: dict[str, list[str]], tokenizer) -> dict[str, np.ndarray]:
    """One int32 token stream per domain: documents joined by the end-of-document token."""
    streams = {}
    for d, docs in texts.items():
        parts = []
        for ids in tokenizer.encode_batch(docs):
            parts.append(np.asarray(ids + ([tokenizer.eos_id] if tokenizer.eos_id is not None else []), np.int32))
        streams[d] = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return streams


@dataclass
class TrainWindows:
    """Seeded training batches over mixed domain streams: ``batch(step) -> int64 [B, seq_len]``."""

    streams: dict[str, np.ndarray]
    seq_len: int
    batch_size: int
    seed: int

    def __post_init__(self):
        # windows per domain per epoch, whatever the offset: one window is kept back for the shift
        self.per_domain = {d: max(len(s) // self.seq_len - 1, 0) for d, s in self.streams.items()}
        self.per_epoch = sum(self.per_domain.values())
        self.tokens = sum(len(s) for s in self.streams.values())
        need = (self.batch_size + len(self.streams)) * self.seq_len
        if self.per_epoch < self.batch_size:
            raise DodocoError(
                f"training text has {self.tokens} tokens ({self.per_epoch} windows of {self.seq_len}); zoo training "
                f"needs at least {need} tokens (--batch-size {self.batch_size} windows of --seq-len {self.seq_len} "
                "plus one per domain): add text, or lower --batch-size or --seq-len"
            )
        self._epoch, self._table = -1, None

    def _epoch_table(self, epoch: int) -> np.ndarray:
        """Window start positions ``[per_epoch, 2]`` (domain index, start) of ``epoch``, shuffled."""
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            rows = []
            for i, (d, n) in enumerate(self.per_domain.items()):
                offset = int(rng.integers(self.seq_len))
                starts = offset + self.seq_len * np.arange(n, dtype=np.int64)
                rows.append(np.stack([np.full(n, i, np.int64), starts], axis=1))
            table = np.concatenate(rows)
            self._table, self._epoch = table[rng.permutation(len(table))], epoch
        return self._table

    def batch(self, step: int) -> np.ndarray:
        streams = list(self.streams.values())
        out = np.empty((self.batch_size, self.seq_len), np.int64)
        for j in range(self.batch_size):
            epoch, pos = divmod(step * self.batch_size + j, self.per_epoch)
            d, start = self._epoch_table(epoch)[pos]
            out[j] = streams[d][start : start + self.seq_len]
        return out

    def epochs(self, steps: int) -> float:
        return steps * self.batch_size / self.per_epoch


def eval_windows(streams: dict[str, np.ndarray], seq_len: int, per_domain: int) -> dict[str, np.ndarray]:
    """The first ``per_domain`` consecutive held-out windows of each domain: ``{domain: int64 [n, seq_len]}``."""
    out = {}
    for d, s in streams.items():
        n = min(per_domain, len(s) // seq_len)
        if n < 1:
            raise DodocoError(
                f"held-out text of domain '{d}' has {len(s)} tokens; evaluation needs at least "
                f"{seq_len} (one window of --seq-len {seq_len}): add held-out text or lower --seq-len"
            )
        out[d] = s[: n * seq_len].astype(np.int64).reshape(n, seq_len)
    return out
