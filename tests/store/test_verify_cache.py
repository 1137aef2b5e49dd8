"""The checksum cache of ``store.verify``: a file verified once is not hashed again, but a file changed
in place (same path, same size) is hashed again and refused: the cache is keyed by path, size and
modification time, never by the path alone."""

import hashlib
import os

import pytest

from dodoco.errors import DodocoError
from dodoco.store import verify
from dodoco.store.manifest import DataFile


def _entry(data: bytes) -> DataFile:
    return DataFile(sha256=hashlib.sha256(data).hexdigest(), shape=(len(data),), dtype="uint8", bytes=len(data))


def test_a_file_changed_in_place_is_hashed_again_and_refused(tmp_path):
    f = tmp_path / "counts.npy"
    good = bytes(range(200))
    f.write_bytes(good)
    entry = _entry(good)
    assert verify.verify_file(tmp_path, "counts.npy", entry) == f  # verified, and cached
    bad = bytearray(good)
    bad[100] ^= 0x01  # one bit flipped: the same size
    f.write_bytes(bytes(bad))
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # written one second later
    with pytest.raises(DodocoError, match="does not match its checksum"):
        verify.verify_file(tmp_path, "counts.npy", entry)


def test_a_second_run_with_the_same_file_name_is_hashed_on_its_own(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    good = b"x" * 64
    (a / "counts.npy").write_bytes(good)
    (b / "counts.npy").write_bytes(b"y" * 64)
    entry = _entry(good)
    verify.verify_file(a, "counts.npy", entry)
    with pytest.raises(DodocoError, match="does not match its checksum"):
        verify.verify_file(b, "counts.npy", entry)


def test_an_unchanged_file_is_hashed_once(tmp_path, monkeypatch):
    f = tmp_path / "counts.npy"
    f.write_bytes(b"z" * 128)
    entry = _entry(f.read_bytes())
    calls = []
    real = verify.sha256_file
    monkeypatch.setattr(verify, "sha256_file", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    for _ in range(3):
        verify.verify_file(tmp_path, "counts.npy", entry)
    assert len(calls) == 1


def test_two_files_of_the_same_size_and_time_are_told_apart_by_their_path(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    good = b"g" * 96
    (a / "counts.npy").write_bytes(good)
    (b / "counts.npy").write_bytes(b"h" * 96)
    st = (a / "counts.npy").stat()
    os.utime(b / "counts.npy", ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time
    entry = _entry(good)
    verify.verify_file(a, "counts.npy", entry)
    with pytest.raises(DodocoError, match="does not match its checksum"):
        verify.verify_file(b, "counts.npy", entry)


def test_errors_name_the_file_the_check_and_the_fix(tmp_path):
    (tmp_path / "counts.npy").write_bytes(b"x" * 10)
    with pytest.raises(DodocoError, match=r"has 10 bytes but its manifest says 11 .*dodoco validate"):
        verify.verify_file(tmp_path, "counts.npy", _entry(b"x" * 11))
    with pytest.raises(DodocoError, match=r"missing tokens.npy: `dodoco validate"):
        verify.verify_file(tmp_path, "tokens.npy", _entry(b""))
    with pytest.raises(DodocoError, match=r"not listed in the run's manifest"):
        verify.verify_file(tmp_path, "counts.npy", None)
