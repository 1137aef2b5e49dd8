"""Text conditions refuse what cannot be real text: binary files, degenerate encodings; and they
identify their data by the sha256 of the files read."""

import numpy as np
import pytest

from dodoco.conditions.text import check_not_degenerate, read_local_texts
from dodoco.errors import DodocoError


@pytest.mark.parametrize(
    "distinct,n,ok",
    [
        (1, 64, False),
        (2, 64, False),
        (3, 64, True),
        (15, 1024, False),
        (16, 1024, True),
        (16, 10**6, True),
        (4, 256, True),
        (3, 256, False),
    ],
)
def test_degenerate_threshold(distinct, n, ok):
    """need = max(3, min(16, n // 64)) distinct ids in n tokens."""
    ids = np.arange(n) % distinct
    if ok:
        check_not_degenerate(ids, "c", "tok")
    else:
        with pytest.raises(DodocoError, match=f"encodes to {distinct} distinct token id"):
            check_not_degenerate(ids, "c", "tok")


def test_binary_and_non_utf8_files_are_refused(tmp_path):
    (tmp_path / "nul.txt").write_bytes(b"text\x00more")
    with pytest.raises(DodocoError, match=r"nul.txt is binary \(a NUL byte at offset 4\)"):
        read_local_texts(str(tmp_path / "nul.txt"))
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DodocoError, match=r"latin.txt is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        read_local_texts(str(tmp_path / "latin.txt"))


def test_text_digest_covers_names_and_bytes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("hello")
    (tmp_path / "d" / "b.jsonl").write_text('{"text": "world"}\n')
    texts, first = read_local_texts(str(tmp_path / "d"))
    assert texts == ["hello", "world"]
    (tmp_path / "d" / "a.txt").write_text("hellO")
    assert read_local_texts(str(tmp_path / "d"))[1] != first
    (tmp_path / "d" / "a.txt").write_text("hello")
    assert read_local_texts(str(tmp_path / "d"))[1] == first
    (tmp_path / "d" / "a.txt").rename(tmp_path / "d" / "c.txt")  # same bytes, another file: other data order
    assert read_local_texts(str(tmp_path / "d"))[1] != first
