"""Job secrets: values this org stores at its own node, which a workflow
names under ``secrets:`` and its jobs receive as environment variables.

A value goes in and never comes back: the node seals it at rest, hands it
only to this org's own jobs on this node (never to a compute run at
another org's), and masks it in their logs.
"""

from __future__ import annotations

from typing import List

from ._paths import seg
from ._transport import Transport


class Secrets:
    def __init__(self, client: Transport) -> None:
        self._c = client

    def set(self, name: str, value: str) -> None:
        """Stores ``value`` as ``name`` (upper-case letters, digits and
        ``_``), replacing any value it had. The value is one line of at most
        4096 bytes."""
        self._c.call("PUT", f"/v1/secrets/{seg(name)}", json={"value": value})

    def list(self) -> List[str]:
        """The names of this org's secrets at the node, sorted."""
        return [s["name"] for s in self._c.get("/v1/secrets")["secrets"]]

    def delete(self, name: str) -> None:
        self._c.call("DELETE", f"/v1/secrets/{seg(name)}")
