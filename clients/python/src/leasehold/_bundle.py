"""A workflow directory as the tar the node takes (``POST /v1/runs``)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from .errors import LeaseholdError

#: The node refuses bundles over its ``workflow.max_bundle_mib`` (64 MiB by
#: default); this side stops reading long before memory is at risk.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024

#: Left out of a bundle: what a notebook or an editor leaves behind, never
#: part of a workflow.
SKIPPED = {".git", ".ipynb_checkpoints", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"}


def tar_directory(directory: Path) -> bytes:
    """The directory's regular files, ``workflow.yaml`` at the top.

    A symbolic link is refused rather than followed or kept: the node would
    refuse it too, and following it could send a file from outside the
    directory.
    """
    directory = Path(directory)
    if not (directory / "workflow.yaml").is_file():
        raise LeaseholdError(f"{directory} has no workflow.yaml at its top", field="directory")
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
            for name in dirs:
                if (Path(root) / name).is_symlink():
                    relative = (Path(root) / name).relative_to(directory).as_posix()
                    raise LeaseholdError(f"{relative} is a symbolic link; a bundle holds files only", field="directory")
            for name in sorted(files):
                path = Path(root) / name
                relative = path.relative_to(directory).as_posix()
                if path.is_symlink() or not path.is_file():
                    raise LeaseholdError(
                        f"{relative} is not a regular file; a bundle holds files only", field="directory"
                    )
                total += path.stat().st_size
                if total > MAX_BUNDLE_BYTES:
                    raise LeaseholdError(
                        f"the directory holds more than {MAX_BUNDLE_BYTES >> 20} MiB", field="directory"
                    )
                info = tar.gettarinfo(str(path), arcname=relative)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    return buffer.getvalue()
