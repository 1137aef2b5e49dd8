"""Real-text conditions: documents -> the model's own tokenizer -> packed sequences.

Documents are tokenized, joined with the end-of-document token (when the tokenizer has one) and cut
into consecutive ``seq_len`` windows; the last partial window is dropped, so no sequence is padded.
Bundled domains read only their held-out split (the zoo trains on the other).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.models.tokenizer import TextTokenizer


def pack(docs: list[list[int]], seq_len: int, S: int, eos_id: int | None, name: str) -> np.ndarray:
    """Pack token lists into ``[S, seq_len]``; error naming what the source has if it is too small."""
    stream: list[int] = []
    need = S * seq_len
    for ids in docs:
        stream.extend(ids)
        if eos_id is not None:
            stream.append(eos_id)
        if len(stream) >= need:
            break
    if len(stream) < need:
        have = len(stream) // seq_len
        raise DodocoError(
            f"condition '{name}' has {len(stream)} tokens, enough for {have} sequences of {seq_len}, "
            f"not {S}: ask for --sequences {have} or fewer, a shorter --seq-len, or more text")
    return np.asarray(stream[:need], dtype=np.int64).reshape(S, seq_len)


def _tokenize_packed(texts: list[str], tokenizer: TextTokenizer, seq_len: int, S: int, name: str):
    # tokenize in slices so that a large source is not tokenized past what is needed
    docs: list[list[int]] = []
    total, i = 0, 0
    while i < len(texts) and total < S * seq_len:
        chunk = tokenizer.encode_batch(texts[i:i + 64])
        docs.extend(chunk)
        total += sum(len(d) + 1 for d in chunk)
        i += 64
    return pack(docs, seq_len, S, tokenizer.eos_id, name), i


def _bundled(domain: str):
    def condition(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
        from dodoco.conditions.samples import load_documents, provenance

        texts = load_documents(domain, "heldout")
        ids, used = _tokenize_packed(texts, tokenizer, seq_len, S, domain)
        prov = provenance().get("files", {}).get(f"text/{domain}.jsonl.gz", {})
        return ids, {"source": f"bundled {domain} sample, held-out split", "documents_read": min(used, len(texts)),
                     "sample_sha256": prov.get("sha256"),
                     "sources": [{"name": src.get("name"), "package": src.get("package"), "version": src.get("version"),
                                  "licence": src.get("licence")} for src in prov.get("sources", [])]}

    condition.__name__ = domain
    condition.__doc__ = f"Bundled held-out {domain} text."
    return condition


prose, code, math, multilingual = (_bundled(d) for d in ("prose", "code", "math", "multilingual"))


def read_local_texts(path: str) -> list[str]:
    """Documents of a .txt file (one document), a .jsonl file ("text" per line) or a folder of them."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DodocoError(f"file condition path '{path}' does not exist: give a .txt/.jsonl file or a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".jsonl")) if root.is_dir() else [root]
    texts: list[str] = []
    for f in files:
        if f.suffix == ".jsonl":
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        texts.append(json.loads(line)["text"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise DodocoError(f"{f}:{n} is not a JSON object with a \"text\" field") from None
        else:
            texts.append(f.read_text(encoding="utf-8", errors="replace"))
    if not texts:
        raise DodocoError(f"no .txt or .jsonl text found under '{path}'")
    return texts


def local_files(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
    """A user's own text: ``file:PATH``."""
    texts = read_local_texts(arg)
    ids, used = _tokenize_packed(texts, tokenizer, seq_len, S, f"file:{arg}")
    digest = hashlib.sha256("\0".join(texts[:used]).encode()).hexdigest()
    return ids, {"source": f"local files {arg}", "documents_read": min(used, len(texts)), "text_sha256": digest}


def hf_dataset(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
    """``hf:DATASET[:CONFIG[:SPLIT]]`` through the ``datasets`` package (streamed)."""
    try:
        import datasets
    except ImportError:
        raise DodocoError(f"condition 'hf:{arg}' needs the datasets package and a network: "
                          "pip install datasets, or save the text locally and use file:PATH") from None
    name, config, split = (arg.split(":") + [None, None])[:3]
    try:
        stream = datasets.load_dataset(name, config, split=split or "test", streaming=True)
    except Exception as exc:  # network or name errors from the hub
        raise DodocoError(f"cannot open Hugging Face dataset '{arg}': {str(exc).splitlines()[0]}") from None
    texts = []
    for row in stream:
        text = row.get("text") or row.get("content") or row.get("code") or ""
        if text.strip():
            texts.append(text)
        if sum(len(t) for t in texts) > S * seq_len * 8:
            break
    ids, used = _tokenize_packed(texts, tokenizer, seq_len, S, f"hf:{arg}")
    return ids, {"source": f"huggingface {arg}", "documents_read": used, "datasets": datasets.__version__}
