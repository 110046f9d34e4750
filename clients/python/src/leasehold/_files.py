"""Files written as every file here is: temp, fsync, rename, and the
directory synced."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_durably(target: Path, data: bytes) -> None:
    """Temp file, fsync, rename: a crash leaves the old file or the new one."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".write-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, target)
        sync_directory(target.parent)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def sync_directory(directory: Path) -> None:
    """Makes a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
