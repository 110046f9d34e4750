"""The node's answers, as typed dicts: what the REST API returns, unchanged.

They are plain ``dict`` at run time (a field the node adds later is kept,
not refused); the types are for editors and type checkers. The node's
OpenAPI document (``/v1/openapi.json``) is the full reference.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict


class Release(TypedDict, total=False):
    max_output_bytes: int
    approval: bool
    trusted_workflows: List[str]
    logs: str
    end_granularity_ms: int


class Policy(TypedDict, total=False):
    allowed_orgs: List[str]
    max_lease_ms: int
    approval: str
    exclusive: bool
    require_tests: bool
    derived: str
    access: str
    release: Release


class Dataset(TypedDict):
    id: str
    owner: str
    version: int
    title: str
    description: str
    tags: List[str]
    content_hash: str
    size_bytes: int
    public_metadata: Dict[str, Any]
    policy: Policy
    retired: bool
    created_at: str
    updated_at: str
    derived_from_run: Optional[str]


class Version(TypedDict):
    version: int
    title: str
    content_hash: str
    updated_at: str


class FileEntry(TypedDict):
    path: str
    size_bytes: int


class Files(TypedDict):
    dataset: str
    version: int
    content_hash: str
    total_bytes: int
    files: List[FileEntry]


class Lease(TypedDict):
    id: str
    dataset_id: str
    dataset_version: Optional[int]
    owner: str
    lessee: str
    purpose: str
    requested_ms: int
    status: str
    granted_at: Optional[str]
    expires_at: Optional[str]
    expires_at_ms: Optional[int]
    reason: Optional[str]
    requested_at: str
    updated_at: str


class Write(TypedDict):
    tx_id: str
    status: str
    height: Optional[int]
    resource: Optional[Dict[str, Any]]


class Job(TypedDict):
    number: int
    command: str
    depends_on: List[int]
    status: str
    exit_code: Optional[int]
    started_at: Optional[str]
    finished_at: Optional[str]
    duration_ms: Optional[int]
    error: Optional[str]


class Run(TypedDict):
    id: str
    name: str
    org: str
    submitted_by: str
    status: str
    reason: Optional[str]
    workflow_hash: str
    leases: List[str]
    inputs: List[str]
    jobs: List[Job]
    created_at: str
    finished_at: Optional[str]
    output_hash: Optional[str]
    published_as: Optional[str]
    executor: Optional[str]
    release: Optional[str]


class LogLine(TypedDict):
    seq: int
    time_ms: int
    job: Optional[int]
    stream: str
    text: str


class OutputFile(TypedDict):
    path: str
    size_bytes: int
    sha256: str
