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
import threading
import time
from pathlib import Path

from .errors import StoreError

LOCK_NAME = ".lock"


#: Locks this process holds for a whole command: (device, inode) of the lock file → [fd,
#: holders]. ``flock`` is per open file, so a second open of the same lock in one process
#: refuses itself — which is right for two independent writers, so only a lock taken with
#: ``nestable=True`` (:func:`tunebook.execute.holding`: ``--until-decided`` rounds, a
#: search's batches, the report after them) lets the command's own RunStores in again,
#: without a gap another process could use. Keyed by the file, not its path: a folder set
#: aside by ``--fresh`` takes its lock file with it.
_HELD: dict[tuple[int, int], list[int]] = {}
_HELD_GUARD = threading.Lock()


class StudyLock:
    """``with StudyLock(folder):`` — raises :class:`StoreError` when another process holds it
    (or waits for it with ``wait=True``). ``nestable``: held for a whole command, so that
    the command's own later acquisitions of it succeed."""

    def __init__(self, folder: str | Path, name: str = LOCK_NAME, wait: bool = False, nestable: bool = False):
        self.path = Path(folder) / name
        self.wait = wait
        self.nestable = nestable
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "StudyLock":
        with _HELD_GUARD:
            try:
                st = os.stat(self.path)
                key = (st.st_dev, st.st_ino)
            except OSError:
                key = None
            entry = _HELD.get(key) if key else None
            if entry is not None:  # this command holds it for its whole length: one more holder
                entry[1] += 1
                self._fd, self._key = entry[0], key
                return self
        fd = self._open_locked()
        if self.nestable:
            st = os.fstat(fd)
            self._key = (st.st_dev, st.st_ino)
            with _HELD_GUARD:
                _HELD[self._key] = [fd, 1]
        self._fd = fd
        return self

    def _open_locked(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only folder, a full disk (no inode for the file)
            from .errors import StoreIOError
            raise StoreIOError(f"{self.path}: cannot open the lock: {exc.strerror or exc}; nothing was "
                               "written") from None
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"host={socket.gethostname()} pid={os.getpid()} since={stamp}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds without the owner's note (a refused runner says "another process")
        return fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, key = self._fd, self._key
        self._fd = self._key = None
        if key is not None:
            with _HELD_GUARD:
                entry = _HELD.get(key)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] > 0:
                        return  # the command's hold goes on
                    del _HELD[key]
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
