"""What DODOCO reads and touches on disk: regular files only, and never through a symbolic link it
would write, lock or delete through.

``open_regular(path)`` opens a file for reading without blocking (a FIFO or a device never hangs a
read) and refuses anything but a regular file in one line; ``regular(path)`` is the same check from
``stat``. ``nofollow_dir(path)`` refuses a run directory that is a symbolic link. Everything else
that writes goes through ``store.atomic`` (temp file + rename: a rename replaces a link, never
writes through it) and ``store.lock`` (``O_NOFOLLOW``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["describe_mode", "nofollow_dir", "open_regular", "read_regular", "regular"]


def describe_mode(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ("a FIFO", "a character device", ...)."""
    for test, what in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def _refuse(path, what: str, found: str, error: type[DodocoError]) -> DodocoError:
    return error(f"{what} {path} is {found}, not a regular file: give a regular file")


def regular(path, what: str = "input file", error: type[DodocoError] = DodocoError) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed: reading through one is harmless) after checking it is
    a regular file; ``error`` (DodocoError for a user's input, DataError for a file of a run) naming
    it otherwise."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist: check the path") from None
    except NotADirectoryError:
        raise error(f"{what} {path} does not exist (a part of its path is a file): check the path") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror}): check the path and its permissions") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, what, describe_mode(st.st_mode), error)
    return st


def open_regular(path, what: str = "input file", error: type[DodocoError] = DodocoError):
    """A binary file object reading ``path``, opened without blocking and checked to be a regular file
    (a FIFO, a device or a folder swapped in after a ``stat`` is still refused, never read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise _refuse(path, what, "a folder", error) from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror}): check the path and its permissions") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refuse(path, what, describe_mode(mode), error)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(
    path, what: str = "input file", error: type[DodocoError] = DodocoError, limit: int | None = None
) -> bytes:
    """The bytes of regular file ``path`` (see ``open_regular``); ``limit`` refuses a larger file
    before reading it."""
    with open_regular(path, what, error) as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise error(
                f"{what} {path} has {size} bytes, more than the {limit} such a file can hold: is it the right file?"
            )
        return f.read()


def nofollow_dir(path, error: type[DodocoError] = DodocoError) -> Path:
    """``path`` checked not to be a symbolic link (DODOCO writes and deletes only inside the real
    folder it was given, never through a link)."""
    path = Path(path)
    if path.is_symlink():
        raise error(
            f"{path} is a symbolic link: DODOCO writes and deletes only in real folders; give the "
            f"folder it points to ({os.path.realpath(path)}) instead"
        )
    return path
