"""The bundled offline text samples and tokenizers (dodoco/data, built by scripts/build_samples.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
from importlib import resources

import pytest

from dodoco.conditions import samples
from dodoco.errors import DodocoError
from dodoco.models.tokenizer import load_tokenizer

QWEN3_VOCAB = 151_669  # 151,643 byte-level BPE tokens + 26 added (<|endoftext|> ... </think>)
DEEPSEEK_V2_VOCAB = 100_002  # 100,000 BPE tokens + <｜begin▁of▁sentence｜>, <｜end▁of▁sentence｜>
MIN_HELDOUT_TOKENS = 128 * 512


def _records(domain: str) -> list[dict]:
    path = resources.files("dodoco").joinpath("data", "text", f"{domain}.jsonl.gz")
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


@pytest.mark.parametrize("domain", samples.DOMAINS)
def test_splits_are_nonempty_and_disjoint(domain):
    train = samples.load_documents(domain, "train")
    heldout = samples.load_documents(domain, "heldout")
    assert train and heldout
    assert all(isinstance(t, str) and t.strip() for t in train + heldout)
    assert not set(train) & set(heldout)
    records = _records(domain)
    assert {r["split"] for r in records} == {"train", "heldout"}
    ids = {s: {r["id"] for r in records if r["split"] == s} for s in ("train", "heldout")}
    assert not ids["train"] & ids["heldout"]
    assert len(ids["train"]) + len(ids["heldout"]) == len(records)  # ids are unique
    assert sum(map(len, train)) > 2 * sum(map(len, heldout))  # about 75% / 25%


@pytest.mark.parametrize("domain", samples.DOMAINS)
def test_heldout_fills_128_sequences_of_512_qwen3_tokens(domain):
    tok = load_tokenizer("qwen3")
    heldout = samples.load_documents(domain, "heldout")
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(heldout))
    assert n_tokens >= MIN_HELDOUT_TOKENS
    stats = samples.provenance()["files"][f"text/{domain}.jsonl.gz"]["splits"]["heldout"]
    assert stats["qwen3_tokens"] == n_tokens
    assert stats["documents"] == len(heldout)


@pytest.mark.parametrize(("name", "vocab"), [("qwen3", QWEN3_VOCAB), ("deepseek_v2", DEEPSEEK_V2_VOCAB)])
def test_tokenizer_round_trips_and_has_expected_vocab(name, vocab):
    tok = load_tokenizer(name)
    assert tok is load_tokenizer(name)  # cached
    assert tok.get_vocab_size(with_added_tokens=True) == vocab
    sentence = "The router sends each token to 8 of 128 experts; 日本語とFrançais aussi."
    ids = tok.encode(sentence, add_special_tokens=False).ids
    assert tok.decode(ids) == sentence
    special = samples.provenance()["files"][f"tokenizers/{name}.json.gz"]["special_tokens"]
    assert tok.token_to_id(special["eos"]["token"]) == special["eos"]["id"]


def test_qwen3_special_token_ids():
    tok = load_tokenizer("qwen3")
    assert tok.token_to_id("<|endoftext|>") == 151643
    assert tok.token_to_id("<|im_end|>") == 151645


def test_provenance_sha256_matches_shipped_files():
    prov = samples.provenance()
    data = resources.files("dodoco").joinpath("data")
    expected = {f"text/{d}.jsonl.gz" for d in samples.DOMAINS} | {"tokenizers/qwen3.json.gz"}
    assert expected <= set(prov["files"])
    assert "split_rule" in prov and "generated_by" in prov
    for rel, entry in prov["files"].items():
        blob = data.joinpath(*rel.split("/")).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], rel


def test_unknown_domain_names_value_and_suggests():
    with pytest.raises(DodocoError) as err:
        samples.load_documents("prosa", "train")
    message = str(err.value)
    assert "'prosa'" in message and "did you mean 'prose'" in message
    assert "\n" not in message


def test_unknown_split_names_value_and_choices():
    with pytest.raises(DodocoError) as err:
        samples.load_documents("prose", "test")
    message = str(err.value)
    assert "'test'" in message and "train" in message and "heldout" in message
    assert "\n" not in message


def test_unknown_tokenizer_suggests():
    with pytest.raises(DodocoError, match="did you mean 'qwen3'"):
        load_tokenizer("qwen")
