"""The study lock: one writer per study folder, held with an OS file lock.

``flock`` on ``<study>/.lock``: the kernel releases it when the holder exits, however it
exits (SIGKILL included), so there is no stale lock to detect or take over, no PID to
trust (PID 1 in every container, reused PIDs) and no race between two starters: the
kernel lets exactly one in. On Linux, ``flock`` on NFS is carried out as a POSIX byte-range
lock, which NFS servers arbitrate across hosts. The file itself is never deleted (deleting a
lock file lets a third process lock a new inode while the second still holds the old one);
it holds the owner's host, PID and start time, for the message a refused runner prints.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from .errors import StoreError

LOCK_NAME = ".lock"


class StudyLock:
    """``with StudyLock(folder):`` — raises :class:`StoreError` when another process holds it
    (or waits for it with ``wait=True``)."""

    def __init__(self, folder: str | Path, name: str = LOCK_NAME, wait: bool = False):
        self.path = Path(folder) / name
        self.wait = wait
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "StudyLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise StoreError(f"{self.path.parent}: in use by {owner} (lock {self.path}); "
                             "wait for it to finish or stop it") from None
        except BaseException:
            os.close(fd)
            raise
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host={socket.gethostname()} pid={os.getpid()} since={stamp}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass  # a full or read-only disk: the lock still goes with the close
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    if "pid" in fields:
        return f"process {fields['pid']} on {fields.get('host', '?')} (since {fields.get('since', '?')})"
    return "another process"
