"""Runs from a notebook's side: a workspace run unchanged, live logs,
outputs, publication, refusals, cancellation, and compute-to-data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import List

import pytest
from conftest import ROWS, leased, shared, until

import leasehold


def test_a_workspace_runs_unchanged_and_its_outputs_come_back(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    shared(org1, org2, name, tmp_path, public={"sample": {"iris.csv": "5.1,setosa\n"}})
    lease_id = leased(org1, org2, name)
    work = org2.leases.workspace(lease_id, tmp_path / "work")
    assert sorted(p.name for p in work.iterdir()) == [
        "README.md",
        "analyse.py",
        "requirements.txt",
        "tests",
        "workflow.yaml",
    ]
    assert (work / "tests/sample/iris.csv").read_text() == "5.1,setosa\n", "the owner's public sample"
    lines: List[leasehold.types.LogLine] = []
    run = org2.runs.run(work, logs=lines.append, timeout_s=120)
    assert run["status"] == "succeeded", run
    text = "\n".join(line["text"] for line in lines)
    assert "read 2 files" in text and f"iris.csv: {len(ROWS)} bytes, 4 lines" in text, text
    # The outputs, listed and fetched, each checked against its sha256.
    listing = org2.runs.outputs(run["id"])
    assert [f["path"] for f in listing["files"]] == ["summary.json"]
    assert listing["output_hash"] == run["output_hash"]
    got = org2.runs.download(run["id"], tmp_path / "out")
    summary = json.loads((got / "summary.json").read_text())
    assert {s["path"]: s["lines"] for s in summary} == {"extra/notes.txt": 1, "iris.csv": 4}
    # Published with its provenance: the derived dataset names the run.
    policy = {"allowed_orgs": ["org3"], "max_lease_ms": 60_000}
    published = org2.runs.publish(run["id"], "Iris file summary", policy, dataset_id=f"{name}-summary")
    assert published["status"] == "committed", published
    assert org2.datasets.get(f"{name}-summary")["derived_from_run"] == run["id"]


def test_the_cli_workspace_runs_unchanged(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    shared(org1, org2, name, tmp_path)
    lease_id = leased(org1, org2, name)
    binary = os.environ["LEASEHOLD_TEST_BIN"]
    token = os.environ["LEASEHOLD_TEST_TOKEN_FILES"].split(",")[1]
    common = ["--url", org2.url, "--token-file", token]
    made = subprocess.run(
        [binary, "workspace", "new", str(tmp_path / "w"), "--lease", lease_id, *common], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    # No sample published: no test, and nothing of the dataset, not even a name.
    assert not (tmp_path / "w/tests").exists() and "iris.csv" not in (tmp_path / "w/workflow.yaml").read_text()
    ran = subprocess.run(
        [binary, "run", "-f", str(tmp_path / "w/workflow.yaml"), *common], capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert "read 2 files" in ran.stdout + ran.stderr


def test_a_refused_run_raises_with_the_field(org2: leasehold.Client) -> None:
    yaml = "jobs:\n- command: ls\n  volumes: [{id: no-such-lease, name: d, path: /home/jovyan/d}]\n"
    with pytest.raises(leasehold.Unprocessable) as e:
        org2.runs.submit_yaml(yaml)
    assert e.value.field and "volumes[0].id" in e.value.field, e.value


def test_a_failed_run_raises_with_its_reason(org2: leasehold.Client, tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text("cmd_mode: shell\njobs:\n- command: echo trying; exit 3\n")
    with pytest.raises(leasehold.RunFailed) as e:
        org2.runs.run(tmp_path, logs=False, timeout_s=60)
    assert e.value.run["status"] == "failed" and e.value.run["jobs"][0]["exit_code"] == 3, e.value.run


def test_a_run_is_cancelled(org2: leasehold.Client, tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text("jobs:\n- command: sleep 60\n")
    run = org2.runs.submit(tmp_path)
    until("the job starts", lambda: org2.runs.get(run["id"])["status"] == "running")
    org2.runs.cancel(run["id"])
    ended = org2.runs.follow(run["id"], logs=False, timeout_s=30)
    assert ended["status"] == "cancelled", ended
    with pytest.raises(leasehold.Conflict):
        org2.runs.outputs(run["id"])


def test_compute_to_data_waits_for_the_owners_release(
    org1: leasehold.Client, org2: leasehold.Client, name: str, tmp_path: Path
) -> None:
    shared(org1, org2, name, tmp_path, access="compute", release={"approval": True, "logs": "after_release"})
    lease_id = leased(org1, org2, name)
    with pytest.raises(leasehold.Forbidden):
        org2.leases.metadata(lease_id)
    (tmp_path / "c").mkdir()
    (tmp_path / "c/workflow.yaml").write_text(
        "cmd_mode: shell\njobs:\n- command: wc -l < d/iris.csv > $OUTPUT_DIR/count.txt; echo counted\n"
        f"  volumes: [{{id: {lease_id}, name: d, path: /home/jovyan/d}}]\n"
    )
    run = org2.runs.submit(tmp_path / "c")
    assert run["executor"] == "org1"
    until("the owner's run ends", lambda: org1.runs.get(run["id"])["status"] == "succeeded")
    assert org2.runs.release_state(run["id"]) is None
    assert org2.runs.get(run["id"])["status"] != "succeeded", "the lessee waits for the release"
    org1.releases.approve(run["id"], "counts only")
    ended = org2.runs.follow(run["id"], logs=False, timeout_s=60)
    assert ended["status"] == "succeeded", ended
    assert org2.runs.release_state(run["id"]) == "released: counts only"
    got = org2.runs.download(run["id"], tmp_path / "released")
    assert (got / "count.txt").read_text() == "4\n"
