"""One writer per run directory: an exclusive lock file, and nothing left behind when released.

``RunLock(path)`` creates the directory if needed, takes an exclusive ``flock`` on ``path/.dodoco.lock``
(the holder's pid and host written in it) and refuses with one line when another process holds it.
The lock file is opened with ``O_NOFOLLOW`` (a link planted there is refused, never followed and never
truncated) and must be a regular file; a folder holding files DODOCO did not write and no run is
refused before the lock file is made. While held, SIGTERM raises KeyboardInterrupt in the main thread,
so that ``finally`` blocks remove temp files as they do on Ctrl-C. On release the lock file is always
removed (and the directory too when the lock made it and nothing else is there); a process that
opened the old lock file just before notices it was removed and retries on the new one. Temp files
of writers that were killed (``kill -9``: nothing runs) are removed by the next holder
(``remove_stale_temps``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

from dodoco.errors import DodocoError
from dodoco.store.atomic import is_temp
from dodoco.store.manifest import MANIFEST
from dodoco.store.own import LOCK, PARTS, foreign_entries
from dodoco.paths import describe_mode, nofollow_dir

__all__ = ["LOCK", "RunLock", "remove_stale_temps"]


def remove_stale_temps(folder: Path) -> list[str]:
    """Remove temp files of interrupted atomic writes in ``folder`` and its ``_parts`` (a real folder,
    never a link); their names. Only call while holding the folder's lock (no live writer owns them)."""
    gone = []
    for sub in (Path(folder), Path(folder) / PARTS):
        if sub.is_symlink() or not sub.is_dir():
            continue
        with os.scandir(sub) as it:
            temps = [e for e in it if e.is_file(follow_symlinks=False) and is_temp(e.name)]
        for e in temps:
            Path(e.path).unlink(missing_ok=True)
            gone.append(str(Path(e.path).relative_to(folder)))
    return gone


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _open_lock(path: Path) -> int:
    """The fd of ``path/.dodoco.lock`` (created), never through a link; DodocoError for a link or a
    file that is not a regular file there."""
    f = path / LOCK
    try:
        fd = os.open(f, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DodocoError(
                f"{f} is a symbolic link: DODOCO never writes through one; remove it (the file it "
                "points to is not touched)"
            ) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise DodocoError(f"{f} is {describe_mode(mode)}, not DODOCO's lock file: remove it, or choose another output")
    return fd


class RunLock:
    """Exclusive lock of one run directory (a context manager; ``acquire``/``release`` also work)."""

    def __init__(self, path, wait: float = 0.0):
        """``wait``: seconds to wait for another holder to finish (0: refuse at once, as writers do;
        a short wait for adding a file to a finished run, e.g. two analyses of one run)."""
        self.path = Path(path)
        self.wait = wait
        self.fd: int | None = None
        self.created = False
        self._old_handler = None

    def _check_folder(self) -> None:
        nofollow_dir(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise DodocoError(
                f"{self.path} is a file, but a run directory is needed there: choose another output folder"
            )
        if self.path.is_dir() and not os.path.lexists(self.path / MANIFEST):
            foreign = foreign_entries(self.path)
            if foreign:
                raise DodocoError(
                    f"{self.path} holds no DODOCO run ({', '.join(foreign[:3])}): choose another "
                    "output (--overwrite never removes other files)"
                )

    def acquire(self) -> "RunLock":
        self._check_folder()
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DodocoError(
                f"cannot make the run directory {self.path} ({exc.strerror}): choose another output folder"
            ) from None
        fd = self._lock_fd(time.monotonic() + self.wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGTERM, _terminated)
        return self

    def _lock_fd(self, deadline: float) -> int:
        """The fd of the lock file, flocked and still the file at its path (a holder removes it when it
        releases: then the new one is taken); one line naming the holder when it is busy past ``deadline``."""
        changed = 0
        while True:
            fd = _open_lock(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise DodocoError(
                    f"another dodoco process ({holder}) is writing {self.path} now: wait for it to "
                    "finish, or choose another output"
                ) from None
            if self._is_current(fd):
                return fd
            os.close(fd)
            changed += 1
            if changed > 100:
                raise DodocoError(f"the lock file of {self.path} keeps changing: is another program removing it?")

    def _is_current(self, fd: int) -> bool:
        """True when ``fd`` is still the file at ``path/.dodoco.lock`` (not removed or replaced meanwhile)."""
        try:
            st = os.lstat(self.path / LOCK)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_ino, st.st_dev) == (mine.st_ino, mine.st_dev)

    def release(self) -> None:
        if self.fd is None:
            return
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)
            self._old_handler = None
        try:
            if self._is_current(self.fd):
                (self.path / LOCK).unlink(missing_ok=True)  # removed while held: a waiter retries on a new one
            if self.created and not os.listdir(self.path):
                self.path.rmdir()
        except OSError:
            pass  # another process put something there meanwhile: it is theirs
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
