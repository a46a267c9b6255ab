"""One daemon per data root: an exclusive lock file that names its holder."""

from __future__ import annotations

import fcntl
import os

from .config import ConfigError

LOCK_NAME = "dockyardd.lock"


class DataRootLock:
    def __init__(self, data_root: str) -> None:
        self.path = os.path.join(data_root, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"data root {os.path.dirname(self.path)} is in use by another dockyardd (pid {holder}); "
                "stop it first or choose another --data-root"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None
