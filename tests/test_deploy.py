"""deploy/ checked offline: each file parses and validates against its schema, and the files agree.

- dagster.yaml: Dagster's own instance-config validation, then a real instance on a fresh
  Postgres database that records and reads back a run.
- docker-compose.yml: the Compose specification's JSON schema (as shipped in PyPI's
  docker-compose 1.29.2, downloaded into a temporary folder by pip, its hash checked).
- helm/values.yaml: a JSON schema transcribed from the official chart's schema models
  (tests/data/deploy_dagster_helm_values.schema.json), and Dagster's validation of the run
  coordinator, monitoring and retries the chart renders from it.

Nothing here needs Docker, a cluster or helm. What containers and Kubernetes do with these files is
not tested; tests/test_deployment_processes.py runs the same processes without containers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import jsonschema
import psycopg
import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from deploy_harness import DEPLOY, REPO

DAGSTER_VERSION = "1.13.27"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
# The Compose specification's JSON schema, as docker-compose 1.29.2 ships it (Apache-2.0).
COMPOSE_WHEEL = "docker_compose-1.29.2-py2.py3-none-any.whl"
COMPOSE_WHEEL_SHA256 = "8d5589373b35c8d3b1c8c1182c6e4a4ff14bffa3dd0b605fcd08f73c94cef809"
COMPOSE_SCHEMA_MEMBER = "compose/config/compose_spec.json"
HELM_SCHEMA = Path(__file__).parent / "data" / "deploy_dagster_helm_values.schema.json"

DAGSTER_PG_VARIABLES = [
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
]


def load(name: str):
    return yaml.safe_load((DEPLOY / name).read_text())


def dagster_home_with(tmp_path: Path, config: dict | None = None) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True)
    text = (DEPLOY / "dagster.yaml").read_text() if config is None else yaml.safe_dump(config)
    (home / "dagster.yaml").write_text(text)
    return home


@pytest.fixture
def storage_env(monkeypatch):
    """Placeholder connection values: validation does not connect."""
    values = dict(
        zip(DAGSTER_PG_VARIABLES, ["db.internal", "5432", "dagster", "x", "dagster"], strict=True)
    )
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


# --- dagster.yaml -----------------------------------------------------------------------------


def test_dagster_yaml_passes_dagsters_instance_config_validation(tmp_path, storage_env):
    config, custom_class = dagster_instance_config(str(dagster_home_with(tmp_path)))

    assert custom_class is None
    assert set(config["storage"]) == {"postgres"}  # one storage block, nothing on SQLite
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == 4
    assert runs["tag_concurrency_limits"] == [{"key": "tenantpulse/flow", "limit": 1}]
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_retries"] == {
        "enabled": True,
        "max_retries": 1,
        "retry_on_asset_or_op_failure": False,
    }
    assert config["telemetry"] == {"enabled": False}


def test_dagster_yaml_takes_every_connection_value_from_the_environment():
    db = load("dagster.yaml")["storage"]["postgres"]["postgres_db"]
    from_env = {key: value["env"] for key, value in db.items() if isinstance(value, dict)}
    assert from_env == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }
    # The driver is the one literal: psycopg2, which dagster-postgres installs.
    assert {k: v for k, v in db.items() if k not in from_env} == {"scheme": "postgresql+psycopg2"}


def test_dagster_validation_rejects_what_it_should(tmp_path, storage_env):
    """The validation above is not vacuous: a misspelt key and a run limit in two places fail."""
    config = load("dagster.yaml")
    config["run_monitoring"]["start_timeout"] = 180
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(dagster_home_with(tmp_path / "a", config)))
    config = load("dagster.yaml")
    config["run_queue"]["max_concurrent_runs"] = 2  # the limit belongs under `concurrency`
    with pytest.raises(DagsterInvalidConfigError, match="incompatible"):
        dagster_instance_config(str(dagster_home_with(tmp_path / "b", config)))


@dg.op(name="ping")
def _ping():
    return 1


@dg.job(name="deploy_instance_check")
def _instance_check_job():
    _ping()


@pytest.mark.postgres
def test_dagster_yaml_makes_a_working_instance_on_postgres(tmp_path, postgres_url, monkeypatch):
    parts = urlsplit(postgres_url)
    env = {
        "DAGSTER_PG_HOST": parts.hostname,
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_USER": parts.username or "postgres",
        "DAGSTER_PG_PASSWORD": parts.password or "",
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = dagster_home_with(tmp_path)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        queue = instance.get_concurrency_config().run_queue_config
        assert (queue.max_concurrent_runs, queue.tag_concurrency_limits) == (
            4,
            [{"key": "tenantpulse/flow", "limit": 1}],
        )
        assert (queue.max_user_code_failure_retries, queue.user_code_failure_retry_delay) == (3, 30)
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_max_runtime_seconds == 21600
        assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 1)

        result = _instance_check_job.execute_in_process(
            instance=instance, tags={"tenantpulse/flow": "deploy-check"}
        )
        assert result.success

    # A second instance from the same file reads the run back from Postgres.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [record] = instance.get_run_records(
            dg.RunsFilter(tags={"tenantpulse/flow": "deploy-check"})
        )
        assert record.dagster_run.run_id == result.run_id
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    with psycopg.connect(postgres_url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'public'"
            )
        }
    assert {"runs", "event_logs", "jobs", "job_ticks", "alembic_version"} <= tables


# --- docker-compose.yml and the image ------------------------------------------------------


@pytest.fixture(scope="module")
def compose_schema(tmp_path_factory) -> dict:
    """The Compose specification's JSON schema, from docker-compose 1.29.2's wheel on PyPI,
    downloaded with pip into a temporary folder (the package itself is not installed: it pins
    PyYAML<6, which this project cannot have)."""
    folder = tmp_path_factory.mktemp("compose-schema")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "docker-compose==1.29.2",
            "-d",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    wheel = folder / COMPOSE_WHEEL
    if done.returncode != 0 or not wheel.exists():
        message = f"could not download {COMPOSE_WHEEL} from the package index: {done.stderr[-500:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == COMPOSE_WHEEL_SHA256
    with zipfile.ZipFile(wheel) as archive:
        return json.loads(archive.read(COMPOSE_SCHEMA_MEMBER))


def interpolate(node, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} in every string of the parsed file, as
    `docker compose` resolves them (after parsing the YAML: an empty result stays a string)."""

    def value(match: re.Match) -> str:
        name, operator, argument = match.groups()
        current = env.get(name, "")
        if operator and operator.endswith("?") and not current:
            raise KeyError(f"{name} is required: {argument}")
        if operator and operator.endswith("-") and not current:
            return argument
        return current

    if isinstance(node, dict):
        return {key: interpolate(item, env) for key, item in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return INTERPOLATION.sub(value, node) if isinstance(node, str) else node


def test_compose_file_validates_against_the_compose_specification(compose_schema):
    validator = jsonschema.Draft201909Validator(compose_schema)
    raw = (DEPLOY / "docker-compose.yml").read_text()
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(yaml.safe_load(raw))]
    assert errors == []
    # And as compose sees it once the secrets are in the environment.
    resolved = interpolate(
        yaml.safe_load(raw), {"DAGSTER_PG_PASSWORD": "p1", "WAREHOUSE_PG_PASSWORD": "p2"}
    )
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(resolved)]
    assert errors == []
    # The schema does reject what compose would: a misspelt service key.
    broken = yaml.safe_load(raw)
    broken["services"]["daemon"]["depend_on"] = broken["services"]["daemon"].pop("depends_on")
    assert list(validator.iter_errors(broken))


def test_compose_refuses_to_start_without_the_passwords_and_holds_no_secret():
    raw = (DEPLOY / "docker-compose.yml").read_text()
    compose = yaml.safe_load(raw)
    with pytest.raises(KeyError, match="DAGSTER_PG_PASSWORD"):
        interpolate(compose, {"WAREHOUSE_PG_PASSWORD": "p2"})
    with pytest.raises(KeyError, match="WAREHOUSE_PG_PASSWORD"):
        interpolate(compose, {"DAGSTER_PG_PASSWORD": "p1"})
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(str(value)), (
                    f"{name}.{key} is not from the environment"
                )
    # Every variable compose reads is documented in .env.example, whose values are all empty,
    # and .env itself is git-ignored.
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert all(value == "" for value in example.values())
    required = {m.group(1) for m in INTERPOLATION.finditer(raw) if m.group(2) != ":-"}
    assert required <= set(example), required - set(example)
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_compose_runs_the_three_dagster_processes_against_one_code_server():
    compose = load("docker-compose.yml")
    services = compose["services"]
    workspace = load("workspace.yaml")
    [entry] = workspace["load_from"]
    server = entry["grpc_server"]

    code = services["code"]["command"]
    assert code[:3] == ["dagster", "api", "grpc"]
    assert code[code.index("--module-name") + 1] == "tenantpulse.definitions"
    assert int(code[code.index("--port") + 1]) == server["port"]
    assert server["host"] == "code"  # the service's name on compose's network

    dagster_home = _dockerfile_env()["DAGSTER_HOME"]
    for name, program in (("webserver", "dagster-webserver"), ("daemon", "dagster-daemon")):
        command = services[name]["command"]
        assert command[0] == program
        assert command[command.index("--workspace") + 1] == f"{dagster_home}/workspace.yaml"
        assert services[name]["depends_on"]["code"]["condition"] == "service_healthy"
    # Every process that opens the instance has every variable dagster.yaml reads.
    for name in ("code", "webserver", "daemon"):
        assert set(DAGSTER_PG_VARIABLES) <= set(services[name]["environment"]), name
    # Only the code server (where sensors and runs execute) holds the warehouse's secrets.
    for name in ("webserver", "daemon"):
        assert not {"PGPASSWORD", "TENANTPULSE_WAREHOUSE_URL"} & set(services[name]["environment"])
    # The UI has no login of its own: it is published on the host's loopback only.
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    # The warehouse URL carries no password (it would show in the UI's resource config).
    url = urlsplit(services["code"]["environment"]["TENANTPULSE_WAREHOUSE_URL"])
    assert url.scheme == "postgresql" and url.password is None


def _dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text()
    [block] = re.findall(r"^ENV (.*?)(?<!\\)$", text, flags=re.MULTILINE | re.DOTALL)
    return dict(item.split("=", 1) for item in shlex.split(block.replace("\\\n", " ")))


def dockerfile_instructions() -> list[list[str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    return [
        line.split(None, 1)
        for line in text.replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_image_runs_the_code_server_as_compose_does():
    instructions = dockerfile_instructions()
    assert instructions[0] == ["FROM", "python:3.11-slim-bookworm"]
    runs = [args for op, args in instructions if op == "RUN"]
    assert "pip install /tmp/build && rm -rf /tmp/build" in runs
    copies = [args.split() for op, args in instructions if op == "COPY"]
    assert ["deploy/dagster.yaml", "deploy/workspace.yaml", "${DAGSTER_HOME}/"] in copies
    assert ["dbt_project", "./dbt_project"] in copies
    [workdir] = [args for op, args in instructions if op == "WORKDIR"]
    assert _dockerfile_env()["TENANTPULSE_DBT_PROJECT_DIR"] == f"{workdir}/dbt_project"
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] != "root"
    [cmd] = [json.loads(args) for op, args in instructions if op == "CMD"]
    assert cmd == load("docker-compose.yml")["services"]["code"]["command"]
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".tenantpulse", "deploy/.env", "dbt_project/target"} <= set(ignored)


def test_the_images_install_finds_the_dbt_project_and_parses_it(tmp_path):
    """The image's layout without Docker: the package installed from a copy of its source
    (`pip install`, not editable, as the Dockerfile does) into a folder of its own, the dbt
    project elsewhere. Without TENANTPULSE_DBT_PROJECT_DIR it cannot find the project; with it,
    the Dockerfile's build-time parse step (its own command, run here) parses it for Postgres."""
    source = tmp_path / "build"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "platform", source / "platform", ignore=_untracked)
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        message = f"pip could not build the package (its build backend comes from the index): {done.stderr[-800:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    project = tmp_path / "opt" / "dbt_project"
    shutil.copytree(REPO / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    [parse] = [
        args for op, args in dockerfile_instructions() if op == "RUN" and "prepare_manifest" in args
    ]
    assignment, _, command = parse.partition(" python -c ")
    name, _, url = assignment.partition("=")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TENANTPULSE_", "DAGSTER_"))
    } | {"PYTHONPATH": str(site), "TENANTPULSE_HOME": str(tmp_path / "home"), name: url}
    code = shlex.split(command)[0]
    check = "import tenantpulse; print(tenantpulse.__file__)"

    where = subprocess.run(
        [sys.executable, "-c", check], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    without = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert without.returncode != 0 and "TENANTPULSE_DBT_PROJECT_DIR" in without.stderr
    env["TENANTPULSE_DBT_PROJECT_DIR"] = str(project)
    parsed = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    manifest = Path(parsed.stdout.strip().splitlines()[-1])
    assert manifest == project / "target" / "postgres" / "manifest.json"
    assert manifest.is_file()


def _untracked(folder, names):
    return [n for n in names if n == "__pycache__" or n.endswith(".egg-info")]


# --- helm/values.yaml ----------------------------------------------------------------------


def helm_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(HELM_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_helm_values_validate_against_the_charts_schema():
    values = load("helm/values.yaml")
    errors = [f"{e.json_path}: {e.message}" for e in helm_validator().iter_errors(values)]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["runLauncher", "type"], "KubernetesRunLauncher"),
        (["runLauncher", "config", "k8sRunLauncher", "envSecret"], []),
        (["dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxRuns"], 4),
        (["dagsterDaemon", "runMonitoring", "startTimeout"], 180),
        (["dagster-user-deployments", "deployments", 0, "image", "pullPolicy"], "Sometimes"),
    ],
)
def test_the_helm_schema_rejects_a_misspelt_or_wrong_value(path, value):
    values = load("helm/values.yaml")
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(helm_validator().iter_errors(values))


def test_helm_values_deploy_our_image_with_the_k8s_run_launcher_and_external_postgres():
    values = load("helm/values.yaml")
    [deployment] = values["dagster-user-deployments"]["deployments"]
    compose_code = load("docker-compose.yml")["services"]["code"]["command"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args == ["--module-name", compose_code[compose_code.index("--module-name") + 1]]
    assert deployment["image"]["tag"] not in ("", "latest", None)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert {"name": "tenantpulse-env"} in deployment["envSecrets"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # The chart renders its service account as the K8sRunLauncher's service_account_name.
    assert values["serviceAccount"]["create"] is True and values["serviceAccount"]["name"]
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False and postgresql["postgresqlHost"]
    assert postgresql["postgresqlPassword"] == ""  # read from the Secret, never from values
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert (
        postgresql["postgresqlScheme"]
        == load("dagster.yaml")["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    # No secret as a plain value anywhere in the file.
    for key, value in _leaves(values):
        if SECRET_NAME.search(key) and isinstance(value, str) and key != "postgresqlSecretName":
            assert value in ("", None), f"{key} holds a value"
    for env_name in deployment["env"]:
        assert not SECRET_NAME.search(env_name), env_name


def _leaves(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _leaves(item, key)
    else:
        yield key, node


def test_helm_and_compose_instances_make_the_same_run_choices(tmp_path, storage_env):
    """The parts of the instance the chart renders from our values (run coordinator, run
    monitoring, run retries, sensors), written out as the chart's instance template does and
    validated by Dagster, agree with deploy/dagster.yaml where they should."""
    daemon = load("helm/values.yaml")["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    monitoring = daemon["runMonitoring"]
    retries = daemon["runRetries"]
    rendered = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queued["maxConcurrentRuns"],
                "tag_concurrency_limits": queued["tagConcurrencyLimits"],
                "dequeue_use_threads": queued["dequeueUseThreads"],
                "dequeue_num_workers": queued["dequeueNumWorkers"],
            },
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
        "sensors": {
            "use_threads": daemon["sensors"]["useThreads"],
            "num_workers": daemon["sensors"]["numWorkers"],
        },
        "telemetry": {"enabled": False},
    }
    config, _ = dagster_instance_config(str(dagster_home_with(tmp_path, rendered)))
    ours = load("dagster.yaml")
    assert (
        config["run_coordinator"]["config"]["max_concurrent_runs"]
        == (ours["concurrency"]["runs"]["max_concurrent_runs"])
    )
    assert (
        config["run_coordinator"]["config"]["tag_concurrency_limits"]
        == (ours["concurrency"]["runs"]["tag_concurrency_limits"])
    )
    assert config["run_retries"] == ours["run_retries"]
    assert (
        config["run_monitoring"]["cancel_timeout_seconds"]
        == (ours["run_monitoring"]["cancel_timeout_seconds"])
    )
    # Kubernetes ends a hung run at the same bound run monitoring uses under compose.
    job_spec = load("helm/values.yaml")["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert (
        job_spec["jobSpecConfig"]["activeDeadlineSeconds"]
        == (ours["run_monitoring"]["max_runtime_seconds"])
    )
    # The chart refuses run limits in both places; ours are in the run coordinator only.
    assert not load("helm/values.yaml").get("concurrency", {}).get("runs")


def test_deploy_files_pin_the_dagster_version_of_pyproject():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"dagster=={DAGSTER_VERSION}"' in pyproject
    assert dg.__version__ == DAGSTER_VERSION
    assert f"version {DAGSTER_VERSION}" in (DEPLOY / "helm" / "values.yaml").read_text()
    assert f"--version {DAGSTER_VERSION}" in (DEPLOY / "helm" / "values.yaml").read_text()
