"""Shared fixtures: a settings object and warehouse per test, on DuckDB and on Postgres.

Postgres tests create their own database and drop it. Without a reachable server they skip, except
under CI=true, where a missing Postgres is a failure. The server is taken from
TENANTPULSE_TEST_POSTGRES_URL (default: postgresql://postgres@127.0.0.1:5432/postgres).

A warehouse that is expensive to build (landed, dbt-built) is built once per test run
(`built_once`, shared by the pytest-xdist workers) and read by the tests that only read it; a test
that changes it works on a `copied_warehouse` (a copy of the DuckDB file and its raw files, or a
Postgres database created from it as a template).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from filelock import FileLock

import dbt_forkserver
from tenantpulse.config import default_raw_path, load_settings, parse_warehouse_url
from tenantpulse.transform import dbt_cli
from tenantpulse.warehouse import open_warehouse

POSTGRES_ADMIN_URL = os.environ.get(
    "TENANTPULSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SIM_END_DATE = "2026-11-01"
# The daily partitions stop two days after the simulated data instead of today, so the analysis
# covers the same few days whatever the date the suite runs on.
DAILY_PARTITIONS_END = "2026-11-03"
# The simulator's shortest history and daily partitions from its first day, for tests whose flows
# need no more than that (make_settings(..., **SHORT_HISTORY)): fewer daily partitions, each with a
# share of every run's bookkeeping.
SHORT_HISTORY_START = "2026-10-04"
SHORT_HISTORY = {
    "TENANTPULSE_SIM_HISTORY_DAYS": "28",
    "TENANTPULSE_DAILY_PARTITIONS_START": SHORT_HISTORY_START,
}


# The test run's id, the same in the controller and in every pytest-xdist worker (they inherit
# the controller's environment): it names the databases of the run's `built_once` warehouses.
TEST_RUN_ENV = "TENANTPULSE_TEST_RUN"


def pytest_configure(config):
    """Name the run, and parse the dbt project once before pytest-xdist starts its workers: two
    workers finding the manifest stale would both run `dbt parse` into the same target folder."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has done both
        return
    os.environ[TEST_RUN_ENV] = uuid.uuid4().hex[:12]
    # `dbt parse` connects to neither warehouse: a throwaway home is enough.
    with tempfile.TemporaryDirectory(prefix="tenantpulse-parse-") as home:
        for url in (f"duckdb:///{home}/warehouse.duckdb", POSTGRES_ADMIN_URL):
            dbt_cli.prepare_manifest(
                load_settings({"TENANTPULSE_HOME": home, "TENANTPULSE_WAREHOUSE_URL": url})
            )


@pytest.fixture(scope="session", autouse=True)
def dbt_forked_from_a_preloaded_process():
    """Each dbt the tests run through dbt_cli.run_dbt forked from a process that imported dbt
    (tests/dbt_forkserver.py). dbt inside Dagster runs (dagster-dbt) still starts anew."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dbt_cli, "launch_dbt", dbt_forkserver.launch_dbt)
        yield


# The modules with the longest tests, with their seconds in a full run (--durations, clean-clone
# CI, 2026-12-07, a slow machine; test_demo.py and test_deployment_processes.py estimated from
# the tests they took in). `--dist worksteal` gives each pytest-xdist worker an equal run of the
# collected tests and lets an idle worker take tests from the end of another's, so each worker's
# run starts with its share of these modules (each whole: its module-scoped fixtures are built
# once; each to the worker with the fewest seconds so far) and ends on short tests, and the
# workers finish together. test_dbt_demo_parity builds the run's demo_flow (its seconds are the
# build's); test_web_dashboard, which copies it, is not among them, so that it comes later and
# finds it built.
SLOW_MODULES = {
    "test_dbt_marts.py": 760,
    "test_demo.py": 390,
    "test_flow_history.py": 345,
    "test_deployment_processes.py": 310,
    "test_tenant_isolation.py": 235,
    "test_connect_demo.py": 230,
    "test_fuzz_flow.py": 160,
    "test_dbt_demo_parity.py": 150,
    "test_pyairbyte.py": 90,
    "test_transform.py": 75,
    "test_removed_tenant.py": 70,
    "test_airbyte.py": 65,
}


def pytest_unconfigure(config):
    """The controller drops the run's `built_once` databases, which outlive the workers that
    built them (the other workers read them)."""
    if hasattr(config, "workerinput") or TEST_RUN_ENV not in os.environ:
        return
    suffix = f"_{os.environ[TEST_RUN_ENV]}"
    with contextlib.suppress(psycopg.OperationalError):
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            for (name,) in admin.execute("select datname from pg_database").fetchall():
                if name.startswith(SHARED_DATABASE_PREFIX) and name.endswith(suffix):
                    admin.execute(f'drop database if exists "{name}" with (force)')


def pytest_collection_modifyitems(config, items):
    """Each worker's run of tests (as worksteal deals them out: equal runs in collection order)
    starts with its share of the SLOW_MODULES, longest first; the other tests fill the runs up, as
    collected. Without pytest-xdist, one run: the SLOW_MODULES first."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    runs: list[list] = [[] for _ in range(workers)]
    seconds = [0] * workers
    for module in sorted(SLOW_MODULES, key=SLOW_MODULES.get, reverse=True):
        worker = seconds.index(min(seconds))
        runs[worker] += [item for item in items if item.path.name == module]
        seconds[worker] += SLOW_MODULES[module]
    others = [item for item in items if item.path.name not in SLOW_MODULES]
    left = len(items)
    for i, run in enumerate(runs):
        size = left // (workers - i)  # the length of the run worksteal gives worker i
        left -= size
        while len(run) < size and others:
            run.append(others.pop(0))
    items[:] = [item for run in runs for item in run] + others


def _admin_connection():
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        message = f"no PostgreSQL server at {POSTGRES_ADMIN_URL} ({error}); set TENANTPULSE_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs Postgres: {message}")
        pytest.skip(message)


def _create_database(name: str, template: str | None = None) -> str:
    """The URL of a new database `name` (a copy of `template`, which must have no open connection,
    when given)."""
    with _admin_connection() as admin:
        copy_of = f' template "{template}"' if template else ""
        admin.execute(f'create database "{name}"{copy_of}')
    return f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


@contextlib.contextmanager
def postgres_database(template: str | None = None, name: str | None = None):
    """The URL of a fresh database, dropped afterwards (for a test needing a second one); with
    `template`, a copy of that database; with `name`, under that name (else a new one)."""
    name = name or f"tenantpulse_test_{uuid.uuid4().hex[:12]}"
    url = _create_database(name, template)
    try:
        yield url
    finally:
        with _admin_connection() as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


@contextlib.contextmanager
def copied_warehouse(url: str, directory: Path, database: str | None = None) -> Iterator[str]:
    """The URL of a copy of the warehouse at `url`, for a test that changes what a shared fixture
    built: the DuckDB file and its raw files' folder copied into `directory`, or a Postgres
    database created from it as a template (named `database`, else anew; dropped afterwards).
    Nothing may hold the source open."""
    source = parse_warehouse_url(url)
    if source.dialect == "duckdb":
        target = directory / "warehouse.duckdb"
        shutil.copyfile(source.duckdb_path, target)
        wal = source.duckdb_path.with_name(source.duckdb_path.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, target.with_name(target.name + ".wal"))
        if source.raw_path.exists():  # copytree keeps the folders' times, as landing reads them
            shutil.copytree(source.raw_path, default_raw_path(target))
        yield f"duckdb:///{target}"
        return
    template = source.postgres_dsn.rsplit("/", 1)[1]
    with postgres_database(template=template, name=database) as copy:
        yield copy


@pytest.fixture
def postgres_url():
    """A fresh database for one test, dropped afterwards."""
    with postgres_database() as url:
        yield url


# The warehouses a test runs on, as pytest parameters: Postgres's marked, to deselect it.
WAREHOUSES = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=WAREHOUSES)
def warehouse_url(request, tmp_path):
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("postgres_url")


def make_settings(tmp_path, warehouse_url, **overrides):
    env = {
        "TENANTPULSE_HOME": str(tmp_path / "home"),
        "TENANTPULSE_WAREHOUSE_URL": warehouse_url,
        "TENANTPULSE_SIM_END_DATE": SIM_END_DATE,
        "TENANTPULSE_SIM_HISTORY_DAYS": "60",
        "TENANTPULSE_SIM_VOLUME": "0.3",
        "TENANTPULSE_DAILY_PARTITIONS_START": "2026-09-01",
        "TENANTPULSE_DAILY_PARTITIONS_END": DAILY_PARTITIONS_END,
        **overrides,
    }
    return load_settings(env)


# The tenants of the whole-flow warehouse the suite shares (demo_flow): every source for two, some
# for the third (the marts of a source it does not have get none of its rows).
DEMO_FLOW_TENANTS = [
    ("acme_growth", "Acme Growth", "stripe,github,shopify,google_analytics", "steady_growth"),
    ("globex_churn", "Globex", "stripe,github,shopify,google_analytics", "churning"),
    ("initech", "Initech", "stripe,google_analytics", "seasonal"),
]


def _run_demo_flow(settings):
    """DEMO_FLOW_TENANTS simulated and run through the whole flow twice in this process: a first
    build, then an incremental day."""
    from flowkit import memory_instance, run_flow_in_process, step_errors
    from tenantpulse.simulator.run import assign_profile, run_simulation
    from tenantpulse.tenants.registry import add_tenant, list_tenants

    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        for tenant_id, name, sources, profile in DEMO_FLOW_TENANTS:
            add_tenant(conn, tenant_id, name, sources)
            assign_profile(conn, tenant_id, profile)
        tenants = list_tenants(conn)
    instance = memory_instance()
    for _ in range(2):
        run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
        results = run_flow_in_process(settings, instance)
        assert all(r.success for r in results), [step_errors(r) for r in results]
        assert [r.job_def.name for r in results] == [
            "land_job",
            "dbt_job",
            "analyse_job",
            "act_job",
        ]
    return settings


SHARED_DATABASE_PREFIX = "tenantpulse_test_shared_"


def _shared_database(name: str) -> str:
    return f"{SHARED_DATABASE_PREFIX}{name}_{os.environ[TEST_RUN_ENV]}"


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """`with built_once(name, kind, build) as settings:` the settings of a warehouse of `kind`
    ("duckdb" or "postgres") that `build(settings)` filled. It is built once per test run, by the
    first test of any pytest-xdist worker that asks for it (the others wait for it), in the run's
    shared temporary folder, and kept until the run ends. Its lock is held inside the `with`:
    tests only read it or copy it (copied_warehouse), and a Postgres database cannot be copied
    while another worker is connected to it."""
    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist each worker's folder is in the run's own: that is what they share.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base

    @contextlib.contextmanager
    def use(name: str, kind: str, build: Callable) -> Iterator:
        directory = shared / f"{name}_{kind}"
        built = directory / "warehouse_url"
        with FileLock(shared / f"{name}_{kind}.lock"):
            if built.exists():
                url = built.read_text()
            else:  # not built yet, or a build that failed part-way: from the start
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir()
                if kind == "duckdb":
                    url = f"duckdb:///{directory / 'warehouse.duckdb'}"
                else:
                    with _admin_connection() as admin:
                        admin.execute(f'drop database if exists "{_shared_database(name)}"')
                    url = _create_database(_shared_database(name))
                build(make_settings(directory, url))
                built.write_text(url)
            yield make_settings(directory, url)

    return use


@contextlib.contextmanager
def copied_once_built(
    shared: contextlib.AbstractContextManager, directory: Path, database: str | None = None
) -> Iterator[str]:
    """The URL of a copy of a `built_once` warehouse (`shared`: its `with`), whose lock is held
    while it is copied, not after (`directory`, `database`: copied_warehouse's)."""
    with contextlib.ExitStack() as copy:
        with shared as source:
            url = copy.enter_context(copied_warehouse(source.warehouse.url, directory, database))
        yield url


@dataclass(frozen=True)
class CopyPlace:
    folder: Path  # the DuckDB copy's folder and TENANTPULSE_HOME's parent
    database: str  # the Postgres copy's name


@pytest.fixture
def copy_place(tmp_path_factory) -> CopyPlace:
    """Where this worker's tests copy a shared warehouse, the same for each (one after another):
    the same DuckDB path or Postgres database and the same TENANTPULSE_HOME, emptied but for the
    parse of the dbt project that the last dbt invocation saved there. dbt reuses a parse only
    for the same warehouse path or database (dbt_cli.saved_parse): in a new place each test's
    first dbt run parsed the whole project again, about 6.5 s of CPU."""
    folder = tmp_path_factory.getbasetemp() / "copy"  # each pytest-xdist worker has its own
    folder.mkdir(exist_ok=True)
    home = folder / "home"
    for entry in [*folder.iterdir(), *(home.iterdir() if home.exists() else [])]:
        if entry in (home, home / "dbt"):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return CopyPlace(folder, f"tenantpulse_test_copy_{worker}_{os.environ[TEST_RUN_ENV]}")


@pytest.fixture(scope="session")
def demo_flow(built_once):
    """`with demo_flow(kind) as settings:` a warehouse where DEMO_FLOW_TENANTS went through the
    whole flow twice (_run_demo_flow), built once per test run (built_once)."""
    return functools.partial(built_once, "demo_flow", build=_run_demo_flow)


@pytest.fixture
def settings(tmp_path, warehouse_url):
    return make_settings(tmp_path, warehouse_url)


@pytest.fixture
def warehouse(settings):
    return open_warehouse(settings.warehouse)
