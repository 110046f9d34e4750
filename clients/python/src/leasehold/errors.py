"""Every refusal of the node, as an exception that carries its problem+json.

The node answers each error with ``application/problem+json``: a ``status``,
a ``title``, a ``detail`` written for people, and for a bad input the
``field`` it is about. Nothing is swallowed: each failed call raises one of
these, with the node's own words in ``detail``; a node that does not answer
at all raises ``Unavailable``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import httpx


class LeaseholdError(Exception):
    """A request the node refused, or an outcome the caller asked to be told of."""

    def __init__(
        self,
        detail: str,
        *,
        status: Optional[int] = None,
        title: str = "",
        field: Optional[str] = None,
        kind: str = "",
        problem: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.detail = detail
        self.status = status
        self.title = title
        self.field = field
        self.kind = kind
        self.problem = problem or {}
        where = f" ({field})" if field else ""
        code = f"{status} " if status else ""
        super().__init__(f"{code}{title or 'error'}{where}: {detail}")


class BadRequest(LeaseholdError):
    """400: the request itself is malformed; ``field`` names what."""


class Unauthorized(LeaseholdError):
    """401: no token, an unknown one, or one that was revoked."""


class Forbidden(LeaseholdError):
    """403: this user's role, or this org, may not do that (or no longer may)."""


class NotFound(LeaseholdError):
    """404: no such dataset, lease, run or tx."""


class Conflict(LeaseholdError):
    """409: the ledger's state does not allow it now."""


class PayloadTooLarge(LeaseholdError):
    """413: over one of the node's limits."""


class Unprocessable(LeaseholdError):
    """422: well-formed but refused, by the node or the chaincode; ``field`` names what."""


class Unavailable(LeaseholdError):
    """503 (or another 5xx): the node cannot answer now; try again later."""


class LeaseNotGranted(LeaseholdError):
    """A lease waited for ended up denied, expired, released or revoked."""

    def __init__(self, lease: Dict[str, Any]) -> None:
        self.lease = lease
        reason = lease.get("reason") or "no reason given"
        super().__init__(f"lease {lease.get('id')} is {lease.get('status')}: {reason}", field="status")


class RunFailed(LeaseholdError):
    """A run followed to its end did not succeed; ``run`` is its record."""

    def __init__(self, run: Dict[str, Any]) -> None:
        self.run = run
        reason = run.get("reason") or "no reason given"
        super().__init__(f"run {run.get('id')} {run.get('status')}: {reason}", field="status")


class Timeout(LeaseholdError):
    """A wait the caller bounded ran out."""


_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
}


def from_response(response: httpx.Response) -> LeaseholdError:
    """The exception for an error answer, read from its problem+json body."""
    problem: Dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict):
            problem = body
    except ValueError:
        pass
    status = response.status_code
    cls = _BY_STATUS.get(status, Unavailable if status >= 500 else LeaseholdError)
    detail = problem.get("detail") or response.text.strip() or response.reason_phrase
    return cls(
        str(detail),
        status=status,
        title=str(problem.get("title", response.reason_phrase)),
        field=problem.get("field"),
        kind=str(problem.get("type", "")),
        problem=problem,
    )
