"""The dbt docs site (`make docs`) opens on tenantpulse's own overview, not dbt's welcome page."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SIM_END_DATE

TENANTPULSE = Path(sys.executable).with_name("tenantpulse")


def test_docs_generate_puts_the_project_overview_in_the_manifest(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TENANTPULSE_", "DAGSTER_"))
    } | {
        "TENANTPULSE_HOME": str(tmp_path / "home"),
        "TENANTPULSE_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "TENANTPULSE_SIM_END_DATE": SIM_END_DATE,
    }
    target = tmp_path / "target"  # not the project's target/: other tests read its manifest
    done = subprocess.run(
        [str(TENANTPULSE), "dbt", "docs", "generate", "--target-path", str(target)]
        + ["--log-path", str(tmp_path / "logs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (target / "index.html").is_file() and (target / "catalog.json").is_file()
    docs = json.loads((target / "manifest.json").read_text())["docs"]
    # The docs site shows doc.<project>.__overview__ instead of dbt's own when the project has one.
    overview = docs["doc.tenantpulse.__overview__"]["block_contents"]
    for layer in ("sources", "staging", "intermediate", "marts"):
        assert f"**{layer}**" in overview
    assert "landing.<source>__<stream>" in overview  # the sources are the landing tables
    assert "How to read the lineage" in overview
    assert "Where the metrics are defined" in overview
    assert "_marts__docs.md" in overview
