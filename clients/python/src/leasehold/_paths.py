"""Paths on the node's API."""

from urllib.parse import quote


def seg(value: str) -> str:
    """One path segment, escaped: an id is never read as a path."""
    return quote(str(value), safe="")


def file_path(path: str) -> str:
    """A file's path under a route, each segment escaped, its ``/`` kept."""
    return "/".join(seg(part) for part in path.split("/"))
