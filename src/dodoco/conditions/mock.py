"""Mock conditions: token IDs that benchmarks use instead of text.

Each generator returns ``ids[S, seq_len]`` (int64) and a provenance dict.
"""

from __future__ import annotations

import numpy as np

from dodoco.models.tokenizer import TextTokenizer


def uniform(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
    """IDs uniform over ``[0, vocab)``: the mock of most MoE benchmarks."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, tokenizer.vocab_size, size=(S, seq_len), dtype=np.int64)
    return ids, {
        "generator": "uniform",
        "vocab_size": tokenizer.vocab_size,
        "seed": seed,
        "identity": f"uniform ids over {tokenizer.vocab_size}",
    }


def ramp(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
    """Megatron-LM's mock GPT dataset pattern: consecutive IDs, ``(s*seq_len + t) mod vocab``."""
    start = np.arange(S, dtype=np.int64)[:, None] * seq_len
    ids = (start + np.arange(seq_len, dtype=np.int64)[None, :]) % tokenizer.vocab_size
    return ids, {
        "generator": "arange modulo vocabulary",
        "vocab_size": tokenizer.vocab_size,
        "identity": f"arange modulo {tokenizer.vocab_size}",
    }


_UNIGRAM_CACHE: dict[tuple[str, int], np.ndarray] = {}


def unigram_frequencies(tokenizer: TextTokenizer) -> np.ndarray:
    """Token frequencies ``[vocab]`` of the bundled training text of all four domains (cached)."""
    from dodoco.conditions.samples import DOMAINS, load_documents

    key = (tokenizer.name, tokenizer.vocab_size)
    if key not in _UNIGRAM_CACHE:
        freq = np.zeros(tokenizer.vocab_size, dtype=np.int64)
        for domain in DOMAINS:
            for ids in tokenizer.encode_batch(load_documents(domain, "train")):
                ids = np.asarray(ids, dtype=np.int64)
                freq += np.bincount(ids[ids < tokenizer.vocab_size], minlength=tokenizer.vocab_size)
        _UNIGRAM_CACHE[key] = freq
    return _UNIGRAM_CACHE[key]


def unigram(tokenizer: TextTokenizer, seq_len: int, S: int, seed: int, arg=None):
    """IDs drawn i.i.d. from real-text unigram frequencies: real token frequency, no token order."""
    freq = unigram_frequencies(tokenizer)
    rng = np.random.default_rng(seed)
    ids = rng.choice(len(freq), size=(S, seq_len), p=freq / freq.sum()).astype(np.int64)
    return ids, {
        "generator": "unigram of bundled train text (prose, code, math, multilingual)",
        "distinct_tokens": int((freq > 0).sum()),
        "seed": seed,
        "identity": f"unigram of the bundled train text, {tokenizer.name} over {len(freq)}",
    }
