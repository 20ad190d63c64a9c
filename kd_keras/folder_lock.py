"""One run at a time in a folder: a run holds an exclusive lock on its model_dir while it
runs, and a second process on the same folder is refused at once, naming the holder's
pid, host and start time.  The lock is the operating system's (flock on the folder
itself): when a holder dies, even by SIGKILL, the kernel releases it, so the next run
takes the folder over.  Who holds it is written to ``.kd_keras.lock`` beside, for the
message only, and removed when the lock is released."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

from kd_keras import files
from kd_keras.errors import UserError

HOLDER_FILE = ".kd_keras.lock"


class FolderInUse(UserError):
    """Another process runs in this folder."""


class FolderLock:
    """The lock of one folder, held from ``acquire`` until ``release`` (or the process's
    end).

    Args:
        folder: the run's model_dir (made when missing).
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.holder_path = os.path.join(folder, HOLDER_FILE)
        self._fd = None

    def acquire(self) -> "FolderLock":
        """Takes the lock and writes who holds it.

        Raises:
            FolderInUse: another process holds it; the message names it.
        """
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FolderInUse(f"--model_dir={self.folder} is in use by another run "
                              f"({holder(self.holder_path)}); wait for it to end, or pass "
                              "another --model_dir.") from None
        self._fd = fd
        files.write_json(self.holder_path, {"pid": os.getpid(), "host": socket.gethostname(),
                                            "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.holder_path)
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def holder(path: str) -> str:
    """Who holds a folder, as words: "pid 123 on host h since 2026-12-06 04:30:00"."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        return f"pid {record['pid']} on host {record['host']} since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"
