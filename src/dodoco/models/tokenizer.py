"""One small text-tokenizer interface over a bundled ``tokenizers.Tokenizer`` or a transformers one."""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from dodoco.errors import DodocoError, did_you_mean

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: The tokenizers that ship with DODOCO (``data/tokenizers``; the zoo's ships in ``data/zoo``).
TOKENIZERS = ("qwen3", "deepseek_v2")


@dataclass
class TextTokenizer:
    """What DODOCO needs of a tokenizer: encode text, the vocabulary size, the end-of-document id."""

    name: str
    backend: Any
    vocab_size: int
    eos_id: int | None

    def encode(self, text: str) -> list[int]:
        if hasattr(self.backend, "encode") and hasattr(self.backend, "get_vocab_size"):  # tokenizers
            return self.backend.encode(text, add_special_tokens=False).ids
        return self.backend(text, add_special_tokens=False)["input_ids"]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if hasattr(self.backend, "encode_batch"):
            return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=False)]
        return [self.encode(t) for t in texts]


_EOS_NAMES = ("<|endoftext|>", "<｜end▁of▁sentence｜>", "</s>", "<|end_of_text|>", "<eos>", "[EOS]")


def from_tokenizers(name: str, tok) -> TextTokenizer:
    """Wrap a ``tokenizers.Tokenizer``; the end-of-document id is looked up by its usual names."""
    vocab = tok.get_vocab(with_added_tokens=True)
    eos = next((vocab[n] for n in _EOS_NAMES if n in vocab), None)
    return TextTokenizer(name, tok, max(vocab.values()) + 1, eos)


def from_transformers(name: str, tok) -> TextTokenizer:
    """Wrap a transformers tokenizer (``AutoTokenizer.from_pretrained``)."""
    return TextTokenizer(name, tok, len(tok), tok.eos_token_id)


def bundled(name: str) -> TextTokenizer:
    """A tokenizer that ships with DODOCO (``qwen3``, ``deepseek_v2``)."""
    return from_tokenizers(name, load_tokenizer(name))


@functools.lru_cache(maxsize=None)
def load_tokenizer(name: str) -> Tokenizer:
    """A bundled tokenizer ("qwen3" or "deepseek_v2") as a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer

    if name not in TOKENIZERS:
        raise did_you_mean("tokenizer", name, TOKENIZERS)
    path = resources.files("dodoco").joinpath("data", "tokenizers", f"{name}.json.gz")
    if not path.is_file():
        raise DodocoError(f"tokenizer '{name}' is not bundled in this install ({path})")
    return Tokenizer.from_str(gzip.decompress(path.read_bytes()).decode("utf-8"))
