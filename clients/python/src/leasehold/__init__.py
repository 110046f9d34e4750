"""leasehold: lease datasets, read their private metadata while the lease
lasts, and run workflows on them, from Python.

    import leasehold
    node = leasehold.Client.from_env()        # LEASEHOLD_URL, LEASEHOLD_TOKEN
    iris = node.datasets.search("iris")[0]
    lease = node.leases.request(iris["id"], duration_ms=3_600_000, purpose="k-means")
    node.leases.wait_until_granted(lease["id"])
    node.leases.metadata(lease["id"])         # a dict, while the lease is active
    run = node.runs.run("my-workflow/")       # its logs stream as they come
"""

from .client import Client
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    LeaseholdError,
    LeaseNotGranted,
    NotFound,
    PayloadTooLarge,
    RunFailed,
    Timeout,
    Unauthorized,
    Unavailable,
    Unprocessable,
)

__all__ = [
    "BadRequest",
    "Client",
    "Conflict",
    "Forbidden",
    "LeaseNotGranted",
    "LeaseholdError",
    "NotFound",
    "PayloadTooLarge",
    "RunFailed",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
]
__version__ = "0.1.0"
