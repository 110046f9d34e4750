"""examples/notebook.ipynb, executed end to end as org2, on the Iris
dataset org1 registers with its policy granting leases at once."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from conftest import until
from nbclient import NotebookClient

import leasehold

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_the_example_notebook_runs(
    org1: leasehold.Client, org2: leasehold.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = {"allowed_orgs": ["org2"], "max_lease_ms": 3_600_000, "approval": "automatic"}
    org1.datasets.register(
        "iris",
        "Iris (Fisher, 1936)",
        policy,
        files=EXAMPLES / "iris" / "data",
        public_metadata={"rows": 150, "sample": {"iris.csv": (EXAMPLES / "iris/tests/sample/iris.csv").read_text()}},
        private_metadata={"location": "s3://hospital/iris.csv"},
    )
    until("org2 sees iris", lambda: org2.datasets.search("Fisher"))
    monkeypatch.setenv("LEASEHOLD_URL", org2.url)
    monkeypatch.setenv("LEASEHOLD_TOKEN_FILE", os.environ["LEASEHOLD_TEST_TOKEN_FILES"].split(",")[1])
    notebook = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    NotebookClient(notebook, timeout=180, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {
        i: "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in c.get("outputs", []))
        for i, c in enumerate(notebook.cells)
        if c.cell_type == "code"
    }
    shown = "\n".join(outputs.values())
    assert "'org2'" in shown and "'active'" in shown and "'succeeded'" in shown, shown
    assert "['location']" in shown, "the metadata's keys, disclosed"
    assert "('committed', True)" in shown, shown
    assert (tmp_path / "results" / "summary.json").is_file()
