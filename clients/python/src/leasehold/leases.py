"""Leases: ask for one, wait for it, read the private metadata while it lasts.

A lease is between this org (the lessee) and a dataset's owner. The owner
grants or denies it; it ends by itself at ``expires_at``, by block time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Union, cast

from ._files import write_durably
from ._paths import seg
from ._transport import Transport
from .errors import LeaseholdError, LeaseNotGranted, NotFound, Timeout
from .types import Lease, Write

#: A lease in one of these states will never become active.
ENDED = {"denied", "expired", "released", "revoked"}


class Leases:
    def __init__(self, client: Transport) -> None:
        self._c = client

    def request(self, dataset_id: str, duration_ms: int, purpose: str = "") -> Lease:
        """Asks the dataset's owner for a lease of ``duration_ms``; returns
        the lease as recorded (``requested``, or ``active`` at once where the
        dataset's policy grants automatically)."""
        body = {"duration_ms": duration_ms, "purpose": purpose}
        write = self._c.post(f"/v1/datasets/{seg(dataset_id)}/leases", body)
        return self._resource(write)

    def get(self, lease_id: str) -> Lease:
        return cast(Lease, self._c.get(f"/v1/leases/{seg(lease_id)}"))

    def list(
        self,
        *,
        role: Optional[str] = None,
        status: Optional[str] = None,
        dataset: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Lease]:
        """This org's leases: ``role="lessee"`` (held), ``"owner"`` (on its
        datasets), or both; by ``status`` and ``dataset``."""
        params = {"role": role, "status": status, "dataset": dataset, "limit": limit}
        return cast(List[Lease], self._c.get("/v1/leases", params))

    def wait_until_granted(self, lease_id: str, timeout_s: float = 300.0, poll_s: float = 0.5) -> Lease:
        """Returns the lease once it is active; raises ``LeaseNotGranted``
        with the owner's reason if it is denied (or ends first), and
        ``Timeout`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            lease = self.get(lease_id)
            if lease["status"] == "active":
                return lease
            if lease["status"] in ENDED:
                raise LeaseNotGranted(cast(Dict[str, Any], lease))
            if time.monotonic() >= deadline:
                raise Timeout(f"lease {lease_id} is still {lease['status']} after {timeout_s:g} s", field="timeout_s")
            time.sleep(poll_s)

    def metadata(self, lease_id: str) -> Dict[str, Any]:
        """The dataset's private metadata, while the lease is active.

        This node asks the owner's, which checks the lease on the ledger at
        that moment, records the read, and answers; nothing is kept here.
        After the lease ends it raises ``Forbidden`` with the owner's reason.
        """
        return cast(Dict[str, Any], self.disclosure(lease_id)["private_metadata"])

    def disclosure(self, lease_id: str) -> Dict[str, Any]:
        """The whole answer: the metadata, the version disclosed, the lease's
        end and the owner's audit tx."""
        return cast(Dict[str, Any], self._c.get(f"/v1/leases/{seg(lease_id)}/metadata"))

    def access_log(self, lease_id: str) -> List[Dict[str, Any]]:
        """Every disclosure under the lease, as the owner recorded it."""
        return cast(List[Dict[str, Any]], self._c.get(f"/v1/leases/{seg(lease_id)}/access-log"))

    def workspace(self, lease_id: str, directory: Union[str, Path]) -> Path:
        """Writes a workflow directory that runs at once on the lease's
        dataset: ``workflow.yaml`` mounting it at ``/home/jovyan/<dataset>``,
        a script that reads it, ``requirements.txt``, a QC test on a small
        fixture, and a README. ``directory`` must be new or empty."""
        root = Path(directory)
        if root.exists() and any(root.iterdir()):
            raise LeaseholdError(f"{root} exists and is not empty", field="directory")
        answer = self._c.get(f"/v1/leases/{seg(lease_id)}/workspace")
        for path, text in answer["files"].items():
            target = root.joinpath(*path.split("/"))
            if ".." in path.split("/") or path.startswith("/"):
                raise LeaseholdError(f"the node named a file {path!r} outside the workspace", field="files")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_durably(target, text.encode())
        return root

    # The owner's side (admin role).

    def grant(self, lease_id: str, duration_ms: Optional[int] = None) -> Lease:
        """Grants for ``duration_ms``, or the duration asked for."""
        body = {} if duration_ms is None else {"duration_ms": duration_ms}
        return self._resource(self._c.post(f"/v1/leases/{seg(lease_id)}/grant", body), lease_id)

    def deny(self, lease_id: str, reason: str) -> Lease:
        return self._resource(self._c.post(f"/v1/leases/{seg(lease_id)}/deny", {"reason": reason}), lease_id)

    def extend(self, lease_id: str, extra_ms: int) -> Lease:
        return self._resource(self._c.post(f"/v1/leases/{seg(lease_id)}/extend", {"extra_ms": extra_ms}), lease_id)

    def revoke(self, lease_id: str, reason: str) -> Lease:
        """Ends an active lease early (the owner), with a reason on the ledger."""
        return self._resource(self._c.post(f"/v1/leases/{seg(lease_id)}/revoke", {"reason": reason}), lease_id)

    # The lessee's side.

    def release(self, lease_id: str) -> Lease:
        """Gives the lease back before its end; the cached copy goes with it."""
        return self._resource(self._c.post(f"/v1/leases/{seg(lease_id)}/release"), lease_id)

    def _resource(self, write: Write, lease_id: Optional[str] = None) -> Lease:
        """The lease a write committed. A write the node answered before its
        block (``pending``) is waited for, then the lease read back."""
        if write.get("resource"):
            return cast(Lease, write["resource"])
        payload = self._committed_payload(write["tx_id"])
        return self.get(lease_id or _lease_named(payload, write["tx_id"]))

    def _committed_payload(self, tx_id: str, timeout_s: float = 60.0) -> Dict[str, Any]:
        """What the tx signed, once it is on this node's ledger."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return cast(Dict[str, Any], self._c.tx(tx_id).get("payload") or {})
            except NotFound:
                if time.monotonic() >= deadline:
                    raise Timeout(f"tx {tx_id} is not on the ledger after {timeout_s:g} s", field="tx_id") from None
                time.sleep(0.2)


def _lease_named(payload: Dict[str, Any], tx_id: str) -> str:
    inner = [v for v in payload.values() if isinstance(v, dict)]
    for value in [payload, *inner]:
        if "lease_id" in value:
            return str(value["lease_id"])
    raise LeaseholdError(f"tx {tx_id} names no lease", field="tx_id")
