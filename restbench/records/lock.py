"""An exclusive lock per run directory, so two runs never write into one directory at once.

The lock is an ``fcntl.flock`` on ``run_dir/.lock``: the kernel drops it when the holding
process dies (even by SIGKILL), so a stale lock left by a dead run never blocks the next one.
The file holds the holder's pid and host for the message a second writer sees.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from restbench.errors import UsageError


class RunLock:
    """``with RunLock(run_dir):`` holds the directory's lock for the block."""

    FILE = ".lock"

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / self.FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UsageError(f"--run-dir: {self.path.parent} is in use by {holder}; wait for it to finish "
                             "or choose another --name") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
