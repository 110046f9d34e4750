"""A real three-org network, started by the test that runs this suite
(``tests/python_client.rs``), which names it in the environment:

- ``LEASEHOLD_TEST_URLS``: the orgs' API URLs, comma-separated (org1 first);
- ``LEASEHOLD_TEST_TOKEN_FILES``: each org's admin token file, the same order;
- ``LEASEHOLD_TEST_BIN``: the ``leasehold`` binary, for the CLI's part.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, List, Optional, TypeVar

import pytest

import leasehold

T = TypeVar("T")


def _orgs() -> List[leasehold.Client]:
    urls = os.environ.get("LEASEHOLD_TEST_URLS")
    tokens = os.environ.get("LEASEHOLD_TEST_TOKEN_FILES")
    if not urls or not tokens:
        pytest.exit("run by tests/python_client.rs, which starts the network and sets LEASEHOLD_TEST_URLS", 2)
    return [
        leasehold.Client(url, Path(token).read_text(), progress=False)
        for url, token in zip(urls.split(","), tokens.split(","))
    ]


@pytest.fixture(scope="session")
def orgs() -> List[leasehold.Client]:
    clients = _orgs()
    yield clients
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def org1(orgs: List[leasehold.Client]) -> leasehold.Client:
    return orgs[0]


@pytest.fixture(scope="session")
def org2(orgs: List[leasehold.Client]) -> leasehold.Client:
    return orgs[1]


@pytest.fixture(scope="session")
def org3(orgs: List[leasehold.Client]) -> leasehold.Client:
    return orgs[2]


@pytest.fixture
def name() -> str:
    """An id no other test uses."""
    return "py-" + uuid.uuid4().hex[:10]


def until(what: str, check: Callable[[], T], timeout_s: float = 30.0) -> T:
    """``check()``'s first truthy answer, polled; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s (last: {value!r})")
        time.sleep(0.2)


ROWS = "sepal_length,species\n5.1,setosa\n6.2,versicolor\n5.9,virginica\n"
PRIVATE = {"location": "s3://hospital/iris.csv", "password": "hunter2-py"}


def register(
    owner: leasehold.Client, dataset_id: str, tmp: Path, public: Optional[dict] = None, **policy: object
) -> None:
    """A dataset of ``owner`` with two files, leasable by org2."""
    files = tmp / f"{dataset_id}-files"
    (files / "extra").mkdir(parents=True)
    (files / "iris.csv").write_text(ROWS)
    (files / "extra" / "notes.txt").write_text("measured in cm\n")
    rules = {"allowed_orgs": ["org2"], "max_lease_ms": 600_000, **policy}
    write = owner.datasets.register(
        dataset_id,
        f"Iris {dataset_id}",
        rules,
        files=files,
        tags=["py"],
        public_metadata=public,
        private_metadata=PRIVATE,
    )
    assert write["status"] == "committed", write


def shared(owner: leasehold.Client, lessee: leasehold.Client, dataset_id: str, tmp: Path, **kwargs: Any) -> None:
    """``register``, then wait until the lessee's node has the dataset."""
    register(owner, dataset_id, tmp, **kwargs)
    until(f"{dataset_id} reaches the lessee", lambda: lessee.datasets.search(dataset_id))


def leased(owner: leasehold.Client, lessee: leasehold.Client, dataset_id: str, duration_ms: int = 600_000) -> str:
    """org2's active lease on ``dataset_id``, granted by its owner."""
    lease = lessee.leases.request(dataset_id, duration_ms, purpose="tests")
    assert lease["status"] == "requested", lease
    until("the owner sees the request", lambda: _visible(owner, lease["id"]))
    owner.leases.grant(lease["id"])
    return lessee.leases.wait_until_granted(lease["id"], timeout_s=30)["id"]


def _visible(client: leasehold.Client, lease_id: str) -> bool:
    try:
        client.leases.get(lease_id)
        return True
    except leasehold.NotFound:
        return False
