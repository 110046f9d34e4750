"""The catalog: find datasets, read their public side, register your own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union, cast

from ._paths import file_path, seg
from ._progress import Progress
from ._transport import Transport
from .errors import LeaseholdError
from .types import Dataset, Files, Policy, Version, Write

#: Read from a file and sent per request body chunk while uploading.
UPLOAD_CHUNK_BYTES = 1 << 20


class Datasets:
    def __init__(self, client: Transport) -> None:
        self._c = client

    def iter(
        self,
        *,
        q: Optional[str] = None,
        owner: Optional[str] = None,
        tag: Optional[str] = None,
        include_retired: bool = False,
        page_size: int = 100,
    ) -> Iterator[Dataset]:
        """Every dataset that matches, a page at a time as they are read."""
        after: Optional[str] = None
        while True:
            params = {"q": q, "owner": owner, "tag": tag, "include_retired": include_retired, "limit": page_size}
            page = self._c.get("/v1/datasets", {**params, "after": after})
            yield from page["items"]
            after = page.get("next")
            if not after:
                return

    def list(self, **filters: Any) -> List[Dataset]:
        """Every dataset that matches ``q`` (text in title, description or
        tags), ``owner``, ``tag``; retired ones with ``include_retired=True``."""
        return list(self.iter(**filters))

    def search(self, text: str) -> List[Dataset]:
        """Datasets whose title, description or tags hold ``text`` (any case)."""
        return self.list(q=text)

    def get(self, dataset_id: str) -> Dict[str, Any]:
        """The dataset's public side, its versions and its lineage."""
        return cast(Dict[str, Any], self._c.get(f"/v1/datasets/{seg(dataset_id)}"))

    def versions(self, dataset_id: str) -> List[Version]:
        """Each version, oldest first, with its content hash."""
        return cast(List[Version], self.get(dataset_id)["versions"])

    def files(self, dataset_id: str) -> Files:
        """The files and their sizes, as the owner holds them (asked of the
        owner's node; another org needs an active lease)."""
        return cast(Files, self._c.get(f"/v1/datasets/{seg(dataset_id)}/files"))

    def register(
        self,
        dataset_id: str,
        title: str,
        policy: Policy,
        *,
        files: Union[str, Path, None] = None,
        description: str = "",
        tags: Sequence[str] = (),
        public_metadata: Optional[Dict[str, Any]] = None,
        private_metadata: Optional[Dict[str, Any]] = None,
    ) -> Write:
        """Registers a dataset of this org, with the files under the
        directory ``files``. The private metadata is sealed by this node
        and shown only to an active lessee. Needs the admin role."""
        if files is not None:
            self.upload(dataset_id, files)
        body = new_dataset(dataset_id, title, policy, description, tags, public_metadata, private_metadata)
        return cast(Write, self._c.post("/v1/datasets", body))

    def update(self, dataset_id: str, *, files: Union[str, Path, None] = None, **patch: Any) -> Write:
        """A new version: any of ``title``, ``description``, ``tags``,
        ``policy``, ``public_metadata``, ``private_metadata``, and new files."""
        if files is not None:
            self.upload(dataset_id, files)
        return cast(Write, self._c.call("PATCH", f"/v1/datasets/{seg(dataset_id)}", json=patch))

    def retire(self, dataset_id: str) -> Write:
        """No new leases on it; leases already granted run to their end."""
        return cast(Write, self._c.call("DELETE", f"/v1/datasets/{seg(dataset_id)}"))

    def upload(self, dataset_id: str, directory: Union[str, Path]) -> List[Dict[str, Any]]:
        """Stages every regular file under ``directory`` for the next
        ``register`` or ``update`` of ``dataset_id``; returns what the node
        hashed. Symbolic links are refused, never followed."""
        root = Path(directory)
        if not root.is_dir():
            raise LeaseholdError(f"{root} is not a directory", field="files")
        paths = _plain_files(root)
        if not paths:
            raise LeaseholdError(f"{root} holds no file", field="files")
        total = sum(p.stat().st_size for p in paths)
        staged = []
        with Progress(total, f"upload {dataset_id}", "B", self._c.progress) as bar:
            for path in paths:
                relative = path.relative_to(root).as_posix()
                url = f"/v1/datasets/{seg(dataset_id)}/files/{file_path(relative)}"
                headers = {"content-type": "application/octet-stream"}
                staged.append(self._c.call("PUT", url, content=_chunks(path, bar), headers=headers))
        return staged


def new_dataset(
    dataset_id: Optional[str],
    title: str,
    policy: Policy,
    description: str,
    tags: Sequence[str],
    public_metadata: Optional[Dict[str, Any]],
    private_metadata: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    """The body of a registration, and of a run's publication."""
    return {
        "id": dataset_id,
        "title": title,
        "description": description,
        "tags": list(tags),
        "policy": policy,
        "public_metadata": public_metadata or {},
        "private_metadata": private_metadata or {},
    }


def _plain_files(root: Path) -> List[Path]:
    out = []
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                raise LeaseholdError(f"{path} is not a regular file", field="files")
            out.append(path)
    return out


def _chunks(path: Path, bar: Progress) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(UPLOAD_CHUNK_BYTES):
            bar.update(len(chunk))
            yield chunk
