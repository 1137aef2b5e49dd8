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
            f"not {S}: ask for --sequences {have} or fewer, a shorter --seq-len, or more text"
        )
    return np.asarray(stream[:need], dtype=np.int64).reshape(S, seq_len)


def _tokenize_packed(texts: list[str], tokenizer: TextTokenizer, seq_len: int, S: int, name: str):
    # tokenize in slices so that a large source is not tokenized past what is needed
    docs: list[list[int]] = []
    total, i = 0, 0
    while i < len(texts) and total < S * seq_len:
        chunk = tokenizer.encode_batch(texts[i : i + 64])
        docs.extend(chunk)
        total += sum(len(d) + 1 for d in chunk)
        i += 64
    ids = pack(docs, seq_len, S, tokenizer.eos_id, name)
    check_not_degenerate(ids, name, tokenizer.name)
    return ids, i


def check_not_degenerate(ids: np.ndarray, name: str, tokenizer: str) -> None:
    """Refuse encoded text with fewer distinct ids than any real text has: at least 3, and
    min(16, tokens / 64) (a tokenizer without its files maps all text to one id, plus end-of-text)."""
    distinct = int(np.unique(ids).size)
    need = max(3, min(16, ids.size // 64))
    if distinct < need:
        raise DodocoError(
            f"condition '{name}' encodes to {distinct} distinct token id(s) in {ids.size} tokens "
            f"(real text has at least {need}): the tokenizer {tokenizer} does not read this text "
            "(missing or wrong tokenizer files?) or the text is degenerate"
        )


def _bundled(domain: str):
    def condition(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
        from dodoco.conditions.samples import load_documents, provenance

        texts = load_documents(domain, "heldout")
        ids, used = _tokenize_packed(texts, tokenizer, seq_len, S, domain)
        prov = provenance().get("files", {}).get(f"text/{domain}.jsonl.gz", {})
        return ids, {
            "source": f"bundled {domain} sample, held-out split",
            "documents_read": min(used, len(texts)),
            "sample_sha256": prov.get("sha256"),
            "identity": f"bundled {domain} sha256:{prov.get('sha256')}",
            "sources": [
                {
                    "name": src.get("name"),
                    "package": src.get("package"),
                    "version": src.get("version"),
                    "licence": src.get("licence"),
                }
                for src in prov.get("sources", [])
            ],
        }

    condition.__name__ = domain
    condition.__doc__ = f"Bundled held-out {domain} text."
    return condition


prose, code, math, multilingual = (_bundled(d) for d in ("prose", "code", "math", "multilingual"))


def _decode(f: Path, data: bytes) -> str:
    """UTF-8 text of a file; a one-line error naming the first bad byte for binary data."""
    if b"\0" in data:
        raise DodocoError(
            f"file condition {f} is binary (a NUL byte at offset {data.index(bytes(1))}): give UTF-8 "
            ".txt or .jsonl text"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DodocoError(
            f"file condition {f} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}): give UTF-8 .txt or .jsonl text"
        ) from None


def read_local_texts(path: str) -> tuple[list[str], str]:
    """Documents of a .txt file (one document), a .jsonl file ("text" per line) or a folder of them, and
    the sha256 of the files read (each file's name relative to PATH, and its bytes)."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DodocoError(f"file condition path '{path}' does not exist: give a .txt/.jsonl file or a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".jsonl")) if root.is_dir() else [root]
    texts: list[str] = []
    digest = hashlib.sha256()
    for f in files:
        data = f.read_bytes()
        digest.update(f"{f.relative_to(root) if root.is_dir() else f.name}\0{len(data)}\0".encode())
        digest.update(data)
        text = _decode(f, data)
        if f.suffix == ".jsonl":
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        record = json.loads(line)["text"]
                    except (json.JSONDecodeError, KeyError, TypeError, RecursionError):
                        raise DodocoError(f'{f}:{n} is not a JSON object with a "text" field') from None
                    if not isinstance(record, str):
                        raise DodocoError(f'{f}:{n}: "text" is {type(record).__name__}, not a string')
                    texts.append(record)
        else:
            texts.append(text)
    if not any(t.strip() for t in texts):
        raise DodocoError(f"no .txt or .jsonl text found under '{path}'")
    return texts, digest.hexdigest()


def local_files(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
    """A user's own text: ``file:PATH``."""
    texts, digest = read_local_texts(arg)
    ids, used = _tokenize_packed(texts, tokenizer, seq_len, S, f"file:{arg}")
    return ids, {
        "source": f"local files {arg}",
        "documents_read": min(used, len(texts)),
        "text_sha256": digest,
        "identity": f"sha256:{digest}",
    }


def _hf_revision(name: str, revision: str | None) -> str:
    """The dataset's commit on the hub: the one asked for, else the current head (pinned for the run)."""
    if revision:
        return revision
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(name).sha
    except Exception as exc:  # offline, unknown name, gated: the hub raises many types
        raise DodocoError(
            f"cannot resolve the revision of Hugging Face dataset '{name}' "
            f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}): give it as "
            "hf:DATASET:CONFIG:SPLIT:REVISION, or save the text locally and use file:PATH"
        ) from None


def hf_dataset(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
    """``hf:DATASET[:CONFIG[:SPLIT[:REVISION]]]`` through the ``datasets`` package (streamed, pinned to a
    revision: the one given, else the hub's current commit, recorded in the run's identity)."""
    try:
        import datasets
    except ImportError:
        raise DodocoError(
            f"condition 'hf:{arg}' needs the datasets package and a network: "
            "pip install datasets, or save the text locally and use file:PATH"
        ) from None
    name, config, split, revision = ([x or None for x in arg.split(":")] + [None] * 3)[:4]
    revision = _hf_revision(name, revision)
    try:
        stream = datasets.load_dataset(name, config, split=split or "test", streaming=True, revision=revision)
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
    return ids, {
        "source": f"huggingface {arg}",
        "documents_read": used,
        "datasets": datasets.__version__,
        "dataset": name,
        "config": config,
        "split": split or "test",
        "revision": revision,
        "identity": f"hf {name}:{config}:{split or 'test'}@{revision}",
    }
