"""The bundled offline real-text samples (see ``dodoco/data/PROVENANCE.json``).

Four domains, each a gzipped JSON-lines file of documents split deterministically (by a hash of
the document id) into ``train`` and ``heldout``. The bundled tokenizers load in
``dodoco.models.tokenizer``.
Rebuilt by ``scripts/build_samples.py``. No torch here: this is cheap to import.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources

from dodoco.errors import DodocoError, did_you_mean

DOMAINS = ("prose", "code", "math", "multilingual")
SPLITS = ("train", "heldout")


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


def provenance() -> dict:
    """The contents of ``dodoco/data/PROVENANCE.json`` (sources, licences, sha256, sizes)."""
    return json.loads(_data("PROVENANCE.json").read_text(encoding="utf-8"))
