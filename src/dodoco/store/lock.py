"""One writer per run directory: an exclusive lock file, and no stub left when nothing was written.

``RunLock(path)`` creates the directory if needed, takes an exclusive ``flock`` on ``path/.dodoco.lock``
(the holder's pid and host written in it) and refuses with one line when another process holds it.
While held, SIGTERM raises KeyboardInterrupt in the main thread, so that ``finally`` blocks remove
temp files as they do on Ctrl-C. On release, the lock file is removed from a directory that holds no
run (a refused or failed start leaves no trace), and the directory too when the lock made it. Temp
files of writers that were killed (``kill -9``: nothing runs) are removed by the next holder
(``remove_stale_temps``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import threading
from pathlib import Path

from dodoco.errors import DodocoError
from dodoco.store.atomic import is_temp

__all__ = ["LOCK", "RunLock", "remove_stale_temps"]

LOCK = ".dodoco.lock"


def remove_stale_temps(folder: Path) -> list[str]:
    """Remove temp files of interrupted atomic writes in ``folder`` and its ``_parts``; their names.
    Only call while holding the folder's lock (no live writer owns them then)."""
    gone = []
    for sub in (Path(folder), Path(folder) / "_parts"):
        if sub.is_dir():
            for f in sub.iterdir():
                if f.is_file() and is_temp(f.name):
                    f.unlink(missing_ok=True)
                    gone.append(str(f.relative_to(folder)))
    return gone


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class RunLock:
    """Exclusive lock of one run directory (a context manager; ``acquire``/``release`` also work)."""

    def __init__(self, path):
        self.path = Path(path)
        self.fd: int | None = None
        self.created = False
        self._old_handler = None

    def acquire(self) -> "RunLock":
        if self.path.exists() and not self.path.is_dir():
            raise DodocoError(f"{self.path} is a file, but a run directory is needed there: choose another output "
                              "folder")
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DodocoError(f"cannot make the run directory {self.path} ({exc.strerror}): choose another "
                              "output folder") from None
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise DodocoError(f"another dodoco process ({holder}) is writing {self.path} now: wait for it to "
                              "finish, or choose another output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGTERM, _terminated)
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        if self._old_handler is not None:
            signal.signal(signal.SIGTERM, self._old_handler)
            self._old_handler = None
        leftover = [p.name for p in self.path.iterdir() if p.name != LOCK]
        if "manifest.json" not in leftover:  # no run here (a refused or failed start): leave no trace
            (self.path / LOCK).unlink(missing_ok=True)
            if self.created and not leftover:
                try:
                    self.path.rmdir()
                except OSError:
                    pass  # another process put something there meanwhile: it is theirs
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
