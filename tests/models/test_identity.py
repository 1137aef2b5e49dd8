"""What identifies a checkpoint (its files' content, or names, sizes and mtimes above the hashing
limit) and which checkpoint folders and tokenizers are refused."""

import os

import pytest

from dodoco.errors import DodocoError
from dodoco.models import identity


def _checkpoint(folder, weights=b"\x01" * 1000):
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen3_moe"}')
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_digest_follows_every_byte_and_name(tmp_path):
    a = identity.checkpoint_identity(_checkpoint(tmp_path / "a"))
    assert a == identity.checkpoint_identity(_checkpoint(tmp_path / "b"))  # same files elsewhere: same run
    assert a["method"] == "sha256 of every file" and a["weight_bytes"] == 1000 and a["files"] == 3
    flipped = _checkpoint(tmp_path / "c", b"\x01" * 999 + b"\x02")
    assert identity.checkpoint_identity(flipped)["digest"] != a["digest"]
    (tmp_path / "a" / "tokenizer.json").write_text('{"changed": 1}')
    assert identity.checkpoint_identity(tmp_path / "a")["digest"] != a["digest"]
    (tmp_path / "b" / "model.safetensors").rename(tmp_path / "b" / "model2.safetensors")
    assert identity.checkpoint_identity(tmp_path / "b")["digest"] != a["digest"]


def test_above_the_limit_weights_enter_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(identity, "HASH_LIMIT", 100)
    folder = _checkpoint(tmp_path / "a")
    first = identity.checkpoint_identity(folder)
    assert "by name, size and mtime" in first["method"]
    w = folder / "model.safetensors"
    w.write_bytes(b"\x02" * 1000)  # same size, new content: the mtime moves
    os.utime(w, ns=(w.stat().st_atime_ns, w.stat().st_mtime_ns + 10**9))
    assert identity.checkpoint_identity(folder)["digest"] != first["digest"]


@pytest.mark.parametrize(
    "remove,message", [("tokenizer.json", "no tokenizer files"), ("model.safetensors", "no weight files")]
)
def test_incomplete_checkpoint_is_refused(tmp_path, remove, message):
    folder = _checkpoint(tmp_path / "a")
    (folder / remove).unlink()
    with pytest.raises(DodocoError, match=message):
        identity.check_checkpoint(folder)


def test_vocab_and_merges_count_as_a_tokenizer(tmp_path):
    folder = _checkpoint(tmp_path / "a")
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.json").write_text("{}")
    with pytest.raises(DodocoError, match="no tokenizer files"):
        identity.check_checkpoint(folder)  # vocab.json alone is not a BPE tokenizer
    (folder / "merges.txt").write_text("")
    identity.check_checkpoint(folder)


@pytest.mark.parametrize(
    "vocab,embed,ok",
    [(151669, 151936, True), (8192, 8192, True), (1, 8192, False), (4095, 8192, False), (4096, 8192, True)],
)
def test_tokenizer_far_smaller_than_the_embedding(vocab, embed, ok):
    if ok:
        identity.check_tokenizer("m", vocab, embed)
    else:
        with pytest.raises(DodocoError, match=f"has {vocab} token"):
            identity.check_tokenizer("m", vocab, embed)
