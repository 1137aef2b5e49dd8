"""Evaluation never touches the training split: the splits are disjoint and each side reads its own."""

import gzip
import json
from importlib import resources

import numpy as np
import pytest

from dodoco.training.data import DOMAINS, read_texts


def _records(domain):
    raw = resources.files("dodoco").joinpath("data", "text", f"{domain}.jsonl.gz").read_bytes()
    return [json.loads(line) for line in gzip.decompress(raw).decode("utf-8").splitlines() if line]


@pytest.mark.parametrize("domain", DOMAINS)
def test_splits_do_not_overlap(domain):
    rows = _records(domain)
    train = [r for r in rows if r["split"] == "train"]
    held = [r for r in rows if r["split"] == "heldout"]
    assert train and held and len(train) + len(held) == len(rows)
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert not {r["text"] for r in train} & {r["text"] for r in held}


def test_zoo_trains_on_the_train_split_only():
    train, held = read_texts("train"), read_texts("heldout")
    for d in DOMAINS:
        expect = [r["text"] for r in _records(d) if r["split"] == "train"]
        assert train[d] == expect
        assert not set(train[d]) & set(held[d])


def test_real_conditions_read_heldout_text():
    """The prose condition's first sequence is the start of the held-out documents, packed."""
    from dodoco.conditions import resolve
    from dodoco.models.zoo import zoo_tokenizer

    tok = zoo_tokenizer()
    generator, arg = resolve("prose")
    ids, _ = generator(tok, 64, 2, 0, arg)
    stream = []
    for r in _records("prose"):
        if r["split"] == "heldout":
            stream += tok.encode(r["text"]) + [tok.eos_id]
        if len(stream) >= 128:
            break
    assert np.array_equal(ids.ravel(), np.asarray(stream[:128]))
