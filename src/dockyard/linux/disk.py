"""Disk usage of a directory tree, counted as dockerd's directory.Size counts it."""

from __future__ import annotations

import os


def directory_size(path: str | os.PathLike[str]) -> int:
    """The lstat sizes of everything below `path` but directories; a hard-linked file counts once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
