"""Shared pieces of scripts/build_samples.py: the document and source records, the split and
selection rules (hashes of document ids, so every build is byte-identical), small helpers
(logging, subprocess, sha256, deterministic gzip, whitespace tidying), the per-source byte budgets,
and the downloads from package registries (pip download, apt-get download + dpkg -x, npm pack),
each cached in the work folder so a second run fetches nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HELDOUT_FRACTION = 0.25
SPLIT_RULE = "heldout if int(sha256(('split:' + id).encode('utf-8')).hexdigest()[:8], 16) < 0.25 * 2**32, else train"
SELECT_RULE = (
    "candidates of each source are ranked by sha256(('select:' + id).encode('utf-8')) and taken in "
    "that order while their UTF-8 size fits the source's byte budget; documents are written in "
    "the source's natural order"
)

# Byte budgets (UTF-8 text) per source: ~1.1 MB train + ~0.37 MB heldout per domain, so that the
# data folder (text + tokenizers) stays under ~6 MB.
BUDGET = {
    "boolq": 1_100_000,
    "web": 400_000,
    "cpython": 1_500_000,
    "math": 1_500_000,
    "debref": 380_000,  # per language
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


def python311() -> str:
    exe = shutil.which("python3.11")
    if exe is None and sys.version_info[:2] == (3, 11):
        exe = sys.executable
    assert exe, "python3.11 not found (needed for the stdlib sample and the math generator)"
    return exe
