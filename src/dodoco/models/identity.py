"""What identifies a model's weights and tokenizer, and whether a checkpoint folder can be used at all.

A run directory is resumed only by the same run (docs/run-format.md, "Identity"): for a local
checkpoint that means the same files. Small files (config, tokenizer, shard index) are always
hashed; weight files are hashed in full up to ``HASH_LIMIT`` bytes, and above it identified by
name, size and modification time (hashing hundreds of GB would take minutes); the manifest records
which was done.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dodoco.errors import DodocoError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".msgpack", ".h5")
HASH_LIMIT = 8 << 30  # weight bytes hashed in full; larger checkpoints: name, size and mtime
SMALL = 64 << 20  # other files up to this size are hashed (config, tokenizer, index)
TOKENIZER_FILES = (
    ("tokenizer.json",),
    ("tokenizer.model",),
    ("spiece.model",),
    ("vocab.json", "merges.txt"),
    ("vocab.txt",),
    ("tekken.json",),
    ("tokenizer.tiktoken",),
    ("qwen.tiktoken",),
)


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def checkpoint_identity(folder) -> dict:
    """``{"digest": "sha256:...", "method": ..., "files": n, "weight_bytes": b}`` of a checkpoint folder.

    The digest covers every file's relative name and content (sha256), except weight files of a
    checkpoint above ``HASH_LIMIT``, which enter as name, size and mtime.
    """
    from dodoco.store.atomic import sha256_file

    folder = Path(folder)
    files = _files(folder)
    weights = {f for f in files if f.suffix in WEIGHT_SUFFIXES}
    total = sum(f.stat().st_size for f in weights)
    full = total <= HASH_LIMIT
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        rel = str(f.relative_to(folder))
        if f in weights and not full:
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        elif f in weights or stat.st_size <= SMALL:
            digest.update(f"{rel}\0{sha256_file(f)}\n".encode())
    method = (
        "sha256 of every file"
        if full
        else f"sha256 of the small files; weight files ({total / 2**30:.0f} GiB, over the {HASH_LIMIT >> 30} GiB "
        "hashing limit) by name, size and mtime"
    )
    return {"digest": "sha256:" + digest.hexdigest(), "method": method, "files": len(files), "weight_bytes": total}


def check_checkpoint(folder) -> None:
    """Refuse a local checkpoint folder that lacks weight shards or tokenizer files, naming what is missing."""
    folder = Path(folder)
    names = {p.name for p in folder.iterdir() if p.is_file()}
    if not any(all(n in names for n in group) for group in TOKENIZER_FILES):
        wanted = ", ".join(" + ".join(g) for g in TOKENIZER_FILES[:5])
        raise DodocoError(
            f"checkpoint {folder} has no tokenizer files (none of {wanted}): copy the tokenizer "
            "the model was trained with into it (without one, transformers falls back to a "
            "vocabulary of 1 and every token gets the same id)"
        )
    for index in sorted(folder.glob("*.index.json")):
        try:
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise DodocoError(f"{index} is not a valid shard index (JSON with a weight_map): re-copy it") from None
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            raise DodocoError(
                f"checkpoint {folder} is missing {len(missing)} weight file(s) named in {index.name}: "
                f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; copy them in"
            )
    if not any(Path(n).suffix in WEIGHT_SUFFIXES for n in names):
        raise DodocoError(
            f"checkpoint {folder} has no weight files (*.safetensors, pytorch_model*.bin): copy the "
            "weights in, or name a hub id"
        )


def check_tokenizer(name: str, vocab: int, embed: int) -> None:
    """Refuse a tokenizer that cannot belong to a model embedding ``embed`` ids: a vocabulary of at most
    one token, or less than half the embedding (real checkpoints pad the embedding by a few percent)."""
    if vocab <= 1 or 2 * vocab < embed:
        raise DodocoError(
            f"the tokenizer of {name} has {vocab} token(s) but the model embeds {embed}: it does "
            "not belong to this model (missing or wrong tokenizer files); use the model's own "
            "tokenizer"
        )
