"""Runs of a workflow directory, their live logs, outputs and publication;
and the owner's side of compute-to-data and of publications."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union, cast

import httpx
from httpx_sse import connect_sse

from ._bundle import tar_directory
from ._files import sync_directory
from ._paths import file_path, seg
from ._progress import Progress
from ._transport import Transport
from .datasets import new_dataset
from .errors import LeaseholdError, RunFailed, Timeout, Unavailable, from_response
from .types import LogLine, Policy, Run, Write

#: Statuses a run does not leave.
FINAL = {"succeeded", "failed", "cancelled"}

#: Times a log stream is resumed after the connection drops, at most.
MAX_RECONNECTS = 5


def print_line(line: LogLine) -> None:
    """The default log printer: ``[job 1] text``, stderr lines to stderr."""
    job = f"[job {line['job']}] " if line.get("job") is not None else ""
    out = sys.stderr if line.get("stream") == "stderr" else sys.stdout
    print(f"{job}{line['text']}", file=out, flush=True)


class Runs:
    def __init__(self, client: Transport) -> None:
        self._c = client

    def submit(self, directory: Union[str, Path], *, force: bool = False) -> Run:
        """Sends the workflow directory (``workflow.yaml`` at its top, and
        its scripts) as a bundle; returns the run as queued. On a dataset
        leased for compute, this node hands it to the owner's, which runs
        it there."""
        bundle = tar_directory(Path(directory))
        headers = {"content-type": "application/x-tar"}
        params = {"force": force} if force else None
        return cast(Run, self._c.call("POST", "/v1/runs", content=bundle, headers=headers, params=params))

    def submit_yaml(self, workflow_yaml: str, *, force: bool = False) -> Run:
        """A ``workflow.yaml`` alone, with no files beside it."""
        headers = {"content-type": "application/yaml"}
        params = {"force": force} if force else None
        return cast(
            Run, self._c.call("POST", "/v1/runs", content=workflow_yaml.encode(), headers=headers, params=params)
        )

    def run(
        self,
        directory: Union[str, Path],
        *,
        force: bool = False,
        logs: Union[bool, Callable[[LogLine], None]] = True,
        timeout_s: Optional[float] = None,
        check: bool = True,
    ) -> Run:
        """Submits the directory, streams its logs as they come (printed, or
        to ``logs`` if it is a function), and returns the ended run. Raises
        ``RunFailed`` (with the run and its reason) unless it succeeded,
        when ``check`` is true."""
        run = self.submit(directory, force=force)
        return self.follow(run["id"], logs=logs, timeout_s=timeout_s, check=check)

    def follow(
        self,
        run_id: str,
        *,
        logs: Union[bool, Callable[[LogLine], None]] = True,
        timeout_s: Optional[float] = None,
        check: bool = False,
    ) -> Run:
        """Follows a run to its end; see ``run``."""
        on_line = print_line if logs is True else (logs or None)
        jobs = len(self.get(run_id).get("jobs") or [])
        with Progress(jobs or None, f"run {run_id}", "job", self._c.progress and jobs > 1) as bar:
            watcher = _JobWatcher(self, run_id, bar)
            for line in self._lines(run_id, timeout_s, watcher):
                if on_line is not None:
                    on_line(line)
                watcher.poll()
            run = watcher.end or self.get(run_id)
            bar.set_total(max(jobs, 1))
        if check and run["status"] != "succeeded":
            raise RunFailed(cast(Dict[str, Any], run))
        return run

    def logs(self, run_id: str, *, timeout_s: Optional[float] = None) -> Iterator[LogLine]:
        """The run's log lines, from the first, until it ends."""
        return self._lines(run_id, timeout_s, None)

    def _lines(self, run_id: str, timeout_s: Optional[float], watcher: Optional["_JobWatcher"]) -> Iterator[LogLine]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        next_seq, drops = 0, 0
        while True:
            # The node sends a keep-alive every 15 s: a read that waits
            # longer than the time left ends the wait at the deadline.
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(f"run {run_id} has not ended after {timeout_s:g} s", field="timeout_s")
            read_s = 60.0 if left is None else min(60.0, left)
            url = f"/v1/runs/{seg(run_id)}/logs"
            try:
                with connect_sse(
                    self._c.http, "GET", url, params={"from": next_seq}, timeout=httpx.Timeout(60.0, read=read_s)
                ) as source:
                    if source.response.is_error:
                        source.response.read()
                        raise from_response(source.response)
                    for event in source.iter_sse():
                        if event.event == "log":
                            line = cast(LogLine, event.json())
                            next_seq, drops = line["seq"] + 1, 0
                            yield line
                        elif event.event == "end":
                            if watcher is not None:
                                watcher.end = cast(Run, event.json())
                            return
                        if deadline is not None and time.monotonic() > deadline:
                            raise Timeout(f"run {run_id} has not ended after {timeout_s:g} s", field="timeout_s")
            except httpx.TransportError as e:
                # A dropped or silent connection: resumed after the last
                # line seen, a few times, each after a longer pause.
                drops += 1
                if drops > MAX_RECONNECTS:
                    raise Unavailable(f"the log of run {run_id} could not be followed: {e}") from e
            else:
                drops += 1
                if drops > MAX_RECONNECTS:
                    raise LeaseholdError(f"the log of run {run_id} keeps closing before its end", field="run")
            time.sleep(min(0.2 * 2**drops, 5.0))

    def get(self, run_id: str) -> Run:
        return cast(Run, self._c.get(f"/v1/runs/{seg(run_id)}"))

    def list(self, *, limit: Optional[int] = None, after: Optional[str] = None) -> List[Run]:
        """This node's runs, newest first."""
        return cast(List[Run], self._c.get("/v1/runs", {"limit": limit, "after": after}))

    def cancel(self, run_id: str) -> Run:
        return cast(Run, self._c.post(f"/v1/runs/{seg(run_id)}/cancel"))

    def release_state(self, run_id: str) -> Optional[str]:
        """Compute-to-data: ``released``, or ``refused`` and the owner's
        reason; ``None`` while the owner has not decided."""
        return self.get(run_id).get("release")

    def outputs(self, run_id: str) -> Dict[str, Any]:
        """A succeeded run's output files, their sizes and sha256."""
        return cast(Dict[str, Any], self._c.get(f"/v1/runs/{seg(run_id)}/outputs"))

    def download(self, run_id: str, directory: Union[str, Path]) -> Path:
        """Writes a succeeded run's outputs under ``directory``, each file
        checked against the sha256 the node listed; returns the directory."""
        root = Path(directory)
        listing = self.outputs(run_id)
        total = int(listing.get("total_bytes", 0))
        with Progress(total, f"outputs of {run_id}", "B", self._c.progress) as bar:
            for entry in listing["files"]:
                url = f"/v1/runs/{seg(run_id)}/outputs/{file_path(entry['path'])}"
                _download(self._c, url, root, entry, bar)
        return root

    def publish(
        self,
        run_id: str,
        title: str,
        policy: Policy,
        *,
        dataset_id: Optional[str] = None,
        description: str = "",
        tags: Sequence[str] = (),
        public_metadata: Optional[Dict[str, Any]] = None,
        private_metadata: Optional[Dict[str, Any]] = None,
    ) -> Write:
        """Publishes a succeeded run's outputs as a dataset derived from its
        inputs (admin role). ``status`` is ``pending`` with the publication
        in ``resource`` when an input's owner must approve it first."""
        body = new_dataset(dataset_id, title, policy, description, tags, public_metadata, private_metadata)
        return cast(Write, self._c.post(f"/v1/runs/{seg(run_id)}/publish", body))


class _JobWatcher:
    """Moves the progress bar as jobs end, reading the run at most once a second."""

    def __init__(self, runs: Runs, run_id: str, bar: Progress) -> None:
        self._runs, self._id, self._bar = runs, run_id, bar
        self._done, self._last = 0, 0.0
        self.end: Optional[Run] = None

    def poll(self) -> None:
        if not self._bar.drawn or time.monotonic() - self._last < 1.0:
            return
        self._last = time.monotonic()
        done = sum(1 for j in self._runs.get(self._id).get("jobs") or [] if j["status"] in FINAL)
        self._bar.update(done - self._done)
        self._done = done


def _download(client: Transport, url: str, root: Path, entry: Dict[str, Any], bar: Progress) -> None:
    target = root.joinpath(*entry["path"].split("/"))
    if root.resolve() not in target.resolve().parents:
        raise LeaseholdError(f"output path {entry['path']!r} leaves the directory", field="path")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, client.stream("GET", url) as response:
            if response.is_error:
                response.read()
                raise from_response(response)
            for chunk in response.iter_bytes():
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != entry["sha256"]:
            raise LeaseholdError(f"{entry['path']} does not match the sha256 the node listed", field="sha256")
        os.replace(temp, target)
        sync_directory(target.parent)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


class Releases:
    """Compute-to-data, the owner's side: release or refuse a run's outputs."""

    def __init__(self, client: Transport) -> None:
        self._c = client

    def approve(self, run_id: str, reason: str = "") -> Run:
        return cast(Run, self._c.post(f"/v1/releases/{seg(run_id)}/approve", {"reason": reason}))

    def deny(self, run_id: str, reason: str) -> Run:
        """Refuses, with a reason recorded on the ledger; the outputs never leave."""
        return cast(Run, self._c.post(f"/v1/releases/{seg(run_id)}/deny", {"reason": reason}))


class Publications:
    """Publications of derived data waiting on their inputs' owners."""

    def __init__(self, client: Transport) -> None:
        self._c = client

    def list(self) -> List[Dict[str, Any]]:
        return cast(List[Dict[str, Any]], self._c.get("/v1/publications"))

    def approve(self, publication_id: str, reason: str = "") -> Write:
        return cast(Write, self._c.post(f"/v1/publications/{seg(publication_id)}/approve", {"reason": reason}))

    def deny(self, publication_id: str, reason: str) -> Write:
        return cast(Write, self._c.post(f"/v1/publications/{seg(publication_id)}/deny", {"reason": reason}))
