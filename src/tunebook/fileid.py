"""A file's identity — inode, size, modification and change times — for memos that must
notice a file replaced (tunebook writes whole files: a new inode) or edited in place."""

from __future__ import annotations

import os
from pathlib import Path


def identity(*paths: Path) -> tuple | None:
    """The identities of ``paths`` together; None where one cannot be read (missing)."""
    try:
        return tuple((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for st in map(os.stat, paths))
    except OSError:
        return None
