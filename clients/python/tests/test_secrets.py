"""Job secrets from a notebook: stored by name, listed by name only, handed
to this org's job as a variable and masked in its log."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import List

import pytest

import leasehold


def test_a_secret_reaches_the_job_masked_and_is_listed_by_name_only(org2: leasehold.Client, tmp_path: Path) -> None:
    name = "PY_" + uuid.uuid4().hex[:8].upper()
    value = "py-secret-" + uuid.uuid4().hex
    org2.secrets.set(name, value)
    assert name in org2.secrets.list()
    work = tmp_path / "wf"
    work.mkdir()
    # The job's command names only the value's hash: it is in the log.
    digest = hashlib.sha256(value.encode()).hexdigest()
    job = f'printf %s "${name}" | sha256sum | grep -q {digest} && echo "got ${name}"'
    (work / "workflow.yaml").write_text(f"cmd_mode: shell\nsecrets: [{name}]\njobs:\n- '{job}'\n")
    lines: List[leasehold.types.LogLine] = []
    run = org2.runs.run(work, logs=lines.append, timeout_s=60)
    assert run["status"] == "succeeded", run
    text = "\n".join(line["text"] for line in lines)
    assert "got ***" in text and value not in text, text
    org2.secrets.delete(name)
    assert name not in org2.secrets.list()
    with pytest.raises(leasehold.Unprocessable) as refused:
        org2.runs.run(work, logs=False, timeout_s=60)
    assert refused.value.field == "secrets[0]", refused.value
    with pytest.raises(leasehold.Unprocessable) as bad:
        org2.secrets.set("lower", "x")
    assert bad.value.field == "name"
