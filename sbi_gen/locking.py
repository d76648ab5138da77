"""One writer per output: an advisory lock beside a file that is being written.

Two ``sbi-gen simulate`` runs on the same ``-o`` used to both exit 0 while one
silently replaced the other's file. :func:`exclusive_output` holds an
``flock`` on ``.NAME.lock`` beside the output for as long as it is written; a
second writer is refused at once with the first one's process id. The kernel
drops the lock when its process dies (even by ``kill -9``), so a stale lock
file never blocks a later run.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sbi_gen.errors import DataError

__all__ = ["exclusive_output", "OutputLockedError"]


class OutputLockedError(DataError):
    """Another process is writing the same output."""


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of ``path``: ``.NAME.lock`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def exclusive_output(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the write lock of ``path`` inside the block; raise :class:`OutputLockedError` if another has it."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(
                f"{path} is being written by another process (pid {holder}, lock {lock}): wait for it to finish, "
                "or choose another output"
            ) from None
        try:  # the holder before us may have removed the lock file after we opened it: lock the current one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield lock
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
