"""What the parts of a client need of it: its checked calls, and whether
to draw progress. ``client.Client`` is the one implementation; the parts
name this, not it, so that the client is built from them and not the
other way round."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Protocol, Union

import httpx


class Transport(Protocol):
    progress: bool

    @property
    def http(self) -> httpx.Client: ...

    def get(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any: ...

    def post(self, path: str, body: Optional[Any] = None) -> Any: ...

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Optional[Any] = None,
        params: Optional[Mapping[str, Any]] = None,
        content: Union[bytes, Iterable[bytes], None] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Any: ...

    def stream(self, method: str, path: str, **kwargs: Any) -> Any: ...

    def tx(self, tx_id: str) -> Dict[str, Any]: ...
