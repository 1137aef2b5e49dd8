"""The bundled offline real-text samples and tokenizers (see ``dodoco/data/PROVENANCE.json``).

Four domains, each a gzipped JSON-lines file of documents split deterministically (by a hash of
the document id) into ``train`` and ``heldout``; plus the Qwen3 and DeepSeek-V2 tokenizers.
Rebuilt by ``scripts/build_samples.py``. No torch here: this is cheap to import.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import TYPE_CHECKING

from dodoco.errors import DodocoError, did_you_mean

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DOMAINS = ("prose", "code", "math", "multilingual")
SPLITS = ("train", "heldout")
TOKENIZERS = ("qwen3", "deepseek_v2")


def _data(*parts: str):
    return resources.files("dodoco").joinpath("data", *parts)


@functools.lru_cache(maxsize=None)
def _records(domain: str) -> tuple[dict, ...]:
    raw = gzip.decompress(_data("text", f"{domain}.jsonl.gz").read_bytes()).decode("utf-8")
    return tuple(json.loads(line) for line in raw.splitlines() if line)


def load_documents(domain: str, split: str) -> list[str]:
    """Texts of one domain's split, in file order (one document per entry)."""
    if domain not in DOMAINS:
        raise did_you_mean("domain", domain, DOMAINS)
    if split not in SPLITS:
        raise DodocoError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
    return [r["text"] for r in _records(domain) if r["split"] == split]


@functools.lru_cache(maxsize=None)
def load_tokenizer(name: str) -> Tokenizer:
    """A bundled tokenizer ("qwen3" or "deepseek_v2") as a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer

    if name not in TOKENIZERS:
        raise did_you_mean("tokenizer", name, TOKENIZERS)
    path = _data("tokenizers", f"{name}.json.gz")
    if not path.is_file():
        raise DodocoError(f"tokenizer '{name}' is not bundled in this install ({path})")
    return Tokenizer.from_str(gzip.decompress(path.read_bytes()).decode("utf-8"))


def provenance() -> dict:
    """The contents of ``dodoco/data/PROVENANCE.json`` (sources, licences, sha256, sizes)."""
    return json.loads(_data("PROVENANCE.json").read_text(encoding="utf-8"))
