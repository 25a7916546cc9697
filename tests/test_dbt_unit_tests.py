"""dbt's unit tests (the models' SQL on fixed inputs: currency conversion, MRR normalisation and
movements, time to merge), which the flow's runs leave out (transform/dbt_args.py), on both
warehouses. They need the models' parents to exist: they run on a copy of the suite's shared
whole-flow warehouse (tests/conftest.py demo_flow)."""

import json
import re

import pytest

from conftest import WAREHOUSES, copied_once_built, make_settings
from tenantpulse.transform.dbt_cli import run_dbt


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_every_dbt_unit_test_passes_on_the_warehouse(demo_flow, kind, copy_place, tmp_path):
    target = tmp_path / "dbt"
    with copied_once_built(demo_flow(kind), copy_place.folder, copy_place.database) as url:
        settings = make_settings(copy_place.folder, url)
        done = run_dbt(settings, ["test", "--select", "test_type:unit"], True, target_dir=target)
    assert done.returncode == 0, done.stdout[-3000:]
    unit_tests = [
        node
        for node in json.loads((target / "manifest.json").read_text())["unit_tests"]
        if node.startswith("unit_test.tenantpulse.")
    ]
    assert len(unit_tests) >= 10  # every model's unit tests in the project, none skipped
    assert re.search(rf"PASS={len(unit_tests)} WARN=0 ERROR=0 SKIP=0", done.stdout), done.stdout
