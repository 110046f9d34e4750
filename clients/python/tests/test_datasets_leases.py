"""The catalog and leases, each call and each refusal, against real nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PRIVATE, ROWS, leased, register, shared, until

import leasehold


def test_from_env_reads_the_url_and_a_token_file(org2: leasehold.Client, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(org2._http.headers["Authorization"].split(" ", 1)[1] + "\n")
    client = leasehold.Client.from_env({"LEASEHOLD_URL": org2.url, "LEASEHOLD_TOKEN_FILE": str(token)})
    assert client.status()["org"] == "org2"
    with pytest.raises(leasehold.LeaseholdError) as e:
        leasehold.Client.from_env({"LEASEHOLD_TOKEN": "x"})
    assert e.value.field == "LEASEHOLD_URL"


def test_a_wrong_token_raises_unauthorized_with_the_nodes_words(org2: leasehold.Client) -> None:
    with pytest.raises(leasehold.Unauthorized) as e:
        leasehold.Client(org2.url, "not-a-token").datasets.list()
    assert e.value.status == 401 and e.value.detail, e.value


def test_register_search_get_versions_and_files(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    register(org1, name, tmp_path)
    found = until("org2 finds the dataset", lambda: [d for d in org2.datasets.search(name) if d["id"] == name])
    assert found[0]["owner"] == "org1" and found[0]["tags"] == ["py"]
    assert name in [d["id"] for d in org2.datasets.list(owner="org1", tag="py")]
    listed = org1.datasets.files(name)
    assert [(f["path"], f["size_bytes"]) for f in listed["files"]] == [
        ("extra/notes.txt", 15),
        ("iris.csv", len(ROWS)),
    ]
    # Another org sees the files only under a lease: the owner's refusal, as it came.
    with pytest.raises(leasehold.Forbidden) as e:
        org2.datasets.files(name)
    assert "active lease" in e.value.detail
    # A new version with new files: two versions, two content hashes.
    more = tmp_path / "v2"
    more.mkdir()
    (more / "iris.csv").write_text(ROWS + "6.0,virginica\n")
    org1.datasets.update(name, files=more, description="one more flower")
    versions = until(
        "org1 has version 2", lambda: len(org1.datasets.versions(name)) == 2 and org1.datasets.versions(name)
    )
    assert versions[0]["content_hash"] != versions[1]["content_hash"]
    assert org1.datasets.get(name)["description"] == "one more flower"


def test_a_refused_registration_names_the_field_and_changes_nothing(
    org1: leasehold.Client, name: str, tmp_path: Path
) -> None:
    with pytest.raises(leasehold.Unprocessable) as e:
        org1.datasets.register(name, "Bad", {"allowed_orgs": ["org2"], "max_lease_ms": 1000, "access": "sideways"})
    assert e.value.status == 422 and e.value.field == "policy.access", e.value
    with pytest.raises(leasehold.NotFound):
        org1.datasets.get(name)


def test_a_lease_from_request_to_release(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    shared(org1, org2, name, tmp_path)
    lease_id = leased(org1, org2, name, duration_ms=300_000)
    assert org2.leases.metadata(lease_id) == PRIVATE
    assert org2.leases.disclosure(lease_id)["dataset_id"] == name
    assert [lease["id"] for lease in org2.leases.list(role="lessee", dataset=name)] == [lease_id]
    # The owner recorded the read; it extends the lease.
    log = until("org1 records the read", lambda: org1.leases.access_log(lease_id))
    assert log[0]["org"] == "org2"
    before = org2.leases.get(lease_id)["expires_at_ms"]
    extended = org1.leases.extend(lease_id, 60_000)
    assert extended["expires_at_ms"] == before + 60_000
    # Past the policy's longest lease: refused, naming the field, and nothing changes.
    with pytest.raises(leasehold.Unprocessable) as e:
        org1.leases.extend(lease_id, 600_000)
    assert e.value.field == "duration_ms" and "exceeds the maximum" in e.value.detail, e.value
    assert org1.leases.get(lease_id)["expires_at_ms"] == before + 60_000
    released = org2.leases.release(lease_id)
    assert released["status"] == "released"
    with pytest.raises(leasehold.LeaseholdError) as e:
        org2.leases.metadata(lease_id)
    assert e.value.status == 403 and "released" in e.value.detail, e.value


def test_a_denied_lease_raises_with_the_owners_reason(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    shared(org1, org2, name, tmp_path)
    lease = org2.leases.request(name, 60_000)
    until("org1 sees the request", lambda: org1.leases.list(role="owner", dataset=name))
    org1.leases.deny(lease["id"], "not for this study")
    with pytest.raises(leasehold.LeaseNotGranted) as e:
        org2.leases.wait_until_granted(lease["id"], timeout_s=30)
    assert "not for this study" in str(e.value) and e.value.lease["status"] == "denied"


def test_an_expired_leases_metadata_raises_with_the_reason(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    shared(org1, org2, name, tmp_path)
    lease_id = leased(org1, org2, name, duration_ms=3_000)
    assert org2.leases.metadata(lease_id) == PRIVATE
    until("the lease expires on org2's node", lambda: org2.leases.get(lease_id)["status"] == "expired")
    with pytest.raises(leasehold.Forbidden) as e:
        org2.leases.metadata(lease_id)
    assert "expired" in e.value.detail, e.value


def test_a_revoked_lease_discloses_nothing(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    shared(org1, org2, name, tmp_path)
    lease_id = leased(org1, org2, name)
    assert org1.leases.revoke(lease_id, "study closed")["status"] == "revoked"
    until("org2 sees the revocation", lambda: org2.leases.get(lease_id)["status"] == "revoked")
    with pytest.raises(leasehold.Forbidden) as e:
        org2.leases.metadata(lease_id)
    assert "revoked" in e.value.detail, e.value
