"""The client: one node's REST API, as its org's user sees it.

A leasehold node acts for its own organisation: the token says which user
of that org calls, and the user's role (viewer, member, admin) what it may
do. Reads of another org's data go through this node, which asks the
owner's node; nothing here holds a key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union, cast

import httpx

from ._paths import seg
from .datasets import Datasets
from .errors import LeaseholdError, Unavailable, from_response
from .leases import Leases
from .runs import Publications, Releases, Runs
from .secrets import Secrets

#: How long one request may take, in seconds: a write waits for its block
#: (the node's ``commit_wait_ms``, 10 s by default) and a little more.
DEFAULT_TIMEOUT_S = 60.0


class Client:
    """``Client("http://127.0.0.1:8082", token)``, or ``Client.from_env()``.

    Its parts: ``datasets``, ``leases``, ``runs``, ``releases`` (compute
    runs' outputs, for an owner), ``publications`` and ``secrets`` (this
    org's job secrets at the node). Every call returns
    what the node answered (see ``leasehold.types``) or raises a
    ``leasehold.LeaseholdError`` carrying the node's problem+json.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        progress: bool = True,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        token = token.strip()
        if not token:
            raise LeaseholdError("the token is empty", field="token")
        self.url = url.rstrip("/")
        #: Whether uploads and runs draw a progress bar (with tqdm installed).
        self.progress = progress
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "leasehold-python/0.1"},
            timeout=timeout_s,
            transport=transport,
        )
        self.datasets = Datasets(self)
        self.leases = Leases(self)
        self.runs = Runs(self)
        self.releases = Releases(self)
        self.publications = Publications(self)
        self.secrets = Secrets(self)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **kwargs: Any) -> "Client":
        """From ``LEASEHOLD_URL`` and ``LEASEHOLD_TOKEN``, or ``LEASEHOLD_TOKEN_FILE``
        (a file holding the token, such as a testnet's ``admin.token``)."""
        env = os.environ if environ is None else environ
        url = env.get("LEASEHOLD_URL")
        if not url:
            raise LeaseholdError("LEASEHOLD_URL is not set", field="LEASEHOLD_URL")
        token = env.get("LEASEHOLD_TOKEN")
        if not token and env.get("LEASEHOLD_TOKEN_FILE"):
            token = Path(env["LEASEHOLD_TOKEN_FILE"]).read_text()
        if not token:
            raise LeaseholdError("set LEASEHOLD_TOKEN or LEASEHOLD_TOKEN_FILE", field="LEASEHOLD_TOKEN")
        return cls(url, token, **kwargs)

    @property
    def http(self) -> httpx.Client:
        """The underlying httpx client, with the token set."""
        return self._http

    def status(self) -> Dict[str, Any]:
        """This node: its org, the ledger's height, the leader and the peers."""
        return cast(Dict[str, Any], self.get("/v1/status"))

    def tx(self, tx_id: str) -> Dict[str, Any]:
        """A transaction on the ledger: its signer, kind, block and what was signed."""
        return cast(Dict[str, Any], self.get(f"/v1/txs/{seg(tx_id)}"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The transport, for the parts: each answer checked, each error raised.

    def get(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Optional[Any] = None) -> Any:
        return self.call("POST", path, json=body)

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Optional[Any] = None,
        params: Optional[Mapping[str, Any]] = None,
        content: Union[bytes, Iterable[bytes], None] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Any:
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=query, content=content, headers=headers)
        except httpx.TransportError as e:
            raise Unavailable(f"{self.url} did not answer: {e}") from e
        if response.is_error:
            raise from_response(response)
        if not response.content:
            return None
        return response.json()

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        """An ``httpx`` streaming response, for the parts that read one."""
        return self._http.stream(method, path, **kwargs)


def _param(v: Any) -> Any:
    return ("true" if v else "false") if isinstance(v, bool) else v
