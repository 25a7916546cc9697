"""Run dbt against the warehouse the settings name: one place derives dbt's target from
TENANTPULSE_WAREHOUSE_URL (profiles.yml reads the variables set here), so there is no second
place to configure the warehouse."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tenantpulse.config import Settings, WarehouseUrl, load_dbt_project_dir
from tenantpulse.transform.windows import RUN_ID_ENV


def __getattr__(name: str) -> Path:
    # `DBT_PROJECT_DIR` for callers without a Settings (settings.dbt_project_dir otherwise): the
    # TENANTPULSE_DBT_PROJECT_DIR setting, looked up when asked for rather than at import.
    if name == "DBT_PROJECT_DIR":
        return load_dbt_project_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dbt_env(warehouse: WarehouseUrl, project_dir: Path | None = None) -> dict[str, str]:
    """The environment dbt runs with on this warehouse: the variables dbt_project/profiles.yml
    reads, and the dialect's target folder. dagster-dbt gives each invocation its own folder
    inside DBT_TARGET_PATH and copies the `dbt parse` results found there into it, so a run
    parses only what changed since. `project_dir`: settings.dbt_project_dir when known."""
    target = {"DBT_TARGET_PATH": str(target_path(warehouse, project_dir))}
    if warehouse.dialect == "duckdb":
        return {
            **target,
            "TENANTPULSE_DBT_TARGET": "duckdb",
            "TENANTPULSE_DUCKDB_PATH": str(warehouse.duckdb_path),
        }
    parts = urlsplit(warehouse.postgres_dsn or "")
    # No password here: the URL holds none (config refuses one); the profile reads it from
    # TENANTPULSE_PG_PASSWORD.
    return {
        **target,
        "TENANTPULSE_DBT_TARGET": "postgres",
        "TENANTPULSE_PG_HOST": parts.hostname or "127.0.0.1",
        "TENANTPULSE_PG_PORT": str(parts.port or 5432),
        "TENANTPULSE_PG_USER": unquote(parts.username or "postgres"),
        "TENANTPULSE_PG_DATABASE": unquote(parts.path.lstrip("/")),
    }


def target_path(warehouse: WarehouseUrl, project_dir: Path | None = None) -> Path:
    """dbt's target folder, one per dialect: the manifests of the two adapters differ.
    `project_dir`: settings.dbt_project_dir when known (default: the setting, looked up now)."""
    return (project_dir or load_dbt_project_dir()) / "target" / warehouse.dialect


PARTIAL_PARSE = "partial_parse.msgpack"


def saved_parse(settings: Settings) -> Path:
    """The parse of the project that dbt last made for this warehouse, kept in TENANTPULSE_HOME.
    dbt reuses a parse only for the profile it was made with, and the DuckDB file's path or the
    Postgres host, port, user and database are part of that profile: the dialect's shared parse
    (target_path), made for whichever warehouse parsed first (the image's build, another
    warehouse on the machine), made every run parse the whole project again: 5.1-5.6 s for
    `dbt parse` against 2.8 s (docs/decisions.md)."""
    profile = {k: v for k, v in dbt_env(settings.warehouse).items() if k != "DBT_TARGET_PATH"}
    key = hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()[:16]
    return settings.home / "dbt" / f"{settings.warehouse.dialect}-{key}-{PARTIAL_PARSE}"


def seed_parse(settings: Settings, target_dir: Path) -> None:
    """Start a dbt invocation in `target_dir` from this warehouse's saved parse, else from the
    dialect's shared one: dbt then parses only the files that changed since."""
    own, shared = saved_parse(settings), target_path(settings.warehouse, settings.dbt_project_dir)
    source = own if own.exists() else shared / PARTIAL_PARSE
    if source.exists():
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target_dir / PARTIAL_PARSE)


def save_parse(settings: Settings, target_dir: Path) -> None:
    """Keep the parse a dbt invocation wrote in `target_dir`, made for this warehouse's profile,
    for the next invocation (renamed into place: another one may be reading the old)."""
    made = target_dir / PARTIAL_PARSE
    if not made.exists():
        return
    kept = saved_parse(settings)
    kept.parent.mkdir(parents=True, exist_ok=True)
    copying = kept.with_name(f"{kept.name}.{uuid.uuid4().hex}.tmp")
    shutil.copy2(made, copying)
    os.replace(copying, kept)


def dbt_executable() -> str:
    return str(Path(sys.executable).with_name("dbt"))


def run_dbt(
    settings: Settings,
    args: list[str],
    capture: bool = False,
    run_id: str | None = None,
    target_dir: Path | None = None,
) -> subprocess.CompletedProcess:
    """`dbt <args>` in the project, on the settings' warehouse; the caller checks the return code.
    With `run_id`, the models read that run's window (transform/windows.py, written before);
    without, none: every date is built and every row tested.

    dbt writes its manifest, results, compiled SQL and log into `target_dir`, which is kept; without
    one, into a folder of its own that is removed when dbt exits. Never into the dialect's shared
    folder, which the code location reads: the project's parse is copied from there first, so dbt
    reuses it, and no reader sees a manifest half-written by another invocation."""
    project_dir = settings.dbt_project_dir
    shared_target = target_path(settings.warehouse, project_dir)
    if target_dir is None:
        shared_target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="invocation-", dir=shared_target) as scratch:
            return run_dbt(settings, args, capture, run_id, Path(scratch))
    target_dir.mkdir(parents=True, exist_ok=True)
    seed_parse(settings, target_dir)
    env = {
        **os.environ,
        **dbt_env(settings.warehouse, project_dir),
        "DBT_TARGET_PATH": str(target_dir),
        "DBT_LOG_PATH": str(target_dir),  # dbt.log too, as dagster-dbt's invocations do
        # `--target` as dagster-dbt passes it: dbt reuses a parse only for the same target
        # argument, and without one it parsed the whole project again (4-5 s).
        "DBT_TARGET": settings.warehouse.dialect,
        "DBT_PROFILES_DIR": str(project_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop(RUN_ID_ENV, None)  # a Dagster dbt run in this process exported its own
    if run_id is not None:
        env[RUN_ID_ENV] = run_id
    done = launch_dbt([dbt_executable(), *args], project_dir, env, capture)
    save_parse(settings, target_dir)
    return done


def launch_dbt(
    argv: list[str], cwd: Path, env: dict[str, str], capture: bool
) -> subprocess.CompletedProcess:
    """One dbt process. The test suite replaces it with one forked from a process that has
    imported dbt already (tests/dbt_forkserver.py): dbt's import is about 3.5 s of CPU a time."""
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=capture, text=True, check=False)


def manifest_is_stale(settings: Settings) -> bool:
    project_dir = settings.dbt_project_dir
    manifest = target_path(settings.warehouse, project_dir) / "manifest.json"
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "tests"):
        sources.extend(p for p in (project_dir / folder).rglob("*") if p.is_file())
    return any(p.stat().st_mtime > built for p in sources)


def prepare_manifest(settings: Settings) -> Path:
    """Parse the project (`dbt parse`) when the manifest is missing or older than the project."""
    shared_target = target_path(settings.warehouse, settings.dbt_project_dir)
    if manifest_is_stale(settings):
        shared_target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="parse-", dir=shared_target) as parsed:
            done = run_dbt(settings, ["parse", "--quiet"], capture=True, target_dir=Path(parsed))
            if done.returncode != 0:
                raise RuntimeError(f"dbt parse failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
            # Renamed into place: a code location loading meanwhile reads the old files or the
            # new, never half of one.
            for name in (PARTIAL_PARSE, "manifest.json"):
                os.replace(Path(parsed) / name, shared_target / name)
    return shared_target / "manifest.json"
