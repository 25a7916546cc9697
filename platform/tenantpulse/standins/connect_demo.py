"""`tenantpulse connect-demo`: the Connect service end to end on this machine, with stand-ins for
the providers and Airbyte, in one command.

It starts, all on 127.0.0.1 and in a fresh demo home (its own DuckDB warehouse and Dagster
instance): the stand-in OAuth provider (standins/oauth_provider.py, every provider approves at
once), the stand-in Airbyte API (standins/airbyte_api.py, whose syncs write the local simulator's
rows), a Dagster daemon, and the web app; it registers a demo tenant and prints its sign-in link.
After a connect on the web page the daemon's sensors do the rest: airbyte_provision_sensor creates
the Airbyte source and connection and starts the first sync, airbyte_jobs_sensor records it,
new_syncs_sensor and flow_sensor run the flow. Ctrl-C stops the web app, then the daemon (with its
runs) and the stand-ins.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.fernet import Fernet

from tenantpulse.config import (
    AIRBYTE_CLIENT_SECRET,
    CONNECT_PROVIDERS,
    VAULT_KEYS,
    Settings,
    load_settings,
)
from tenantpulse.connect.provision import DESTINATION_ID
from tenantpulse.flow_runs import DAGSTER_YAML, dagster_instance, running_daemon
from tenantpulse.standins.airbyte_api import AirbyteStandIn, JobPlan
from tenantpulse.standins.oauth_provider import OAuthStandIn
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse

DEMO_TENANT, DEMO_NAME, DEMO_SOURCES = "demo_shop", "Demo Shop", "shopify"
DEMO_USER = "owner@demo-shop.example"
MARKER = ".tenantpulse-connect-demo"  # only a folder holding it is wiped at the next start
HISTORY_DAYS = "60"  # the simulated history a first sync brings: a quick first flow
# Not run at once: the first sync must not write the DuckDB file while the provisioning sensor,
# which starts it, still holds it. The jobs sensor's next listing finds it finished.
FIRST_SYNC = JobPlan(seconds=5)
SIGNIN_MINUTES = 60
RUN_START_TIMEOUT_SECONDS = 900
DEMO_DESTINATION_ID = "d0000000-0000-4000-8000-000000000001"  # the stand-in takes any


@dataclass(frozen=True)
class Demo:
    settings: Settings  # every process's: Airbyte mode against the stand-in, the vault key
    signin_url: str


def fresh_home(home: Path) -> Path:
    """The demo's folder, emptied: a previous demo's warehouse would name Airbyte connections
    the new stand-in never made. A folder that is not a demo's own is refused, not wiped."""
    home = home.expanduser().resolve()
    if home.exists():
        if not (home / MARKER).exists():
            raise ValueError(
                f"{home} exists and is not a connect-demo folder (no {MARKER}): choose another "
                "with --home"
            )
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / MARKER).write_text("written by `tenantpulse connect-demo`; wiped at its next start\n")
    return home


def demo_environment(environ: Mapping[str, str], home: Path) -> dict[str, str]:
    """The user's variables with the demo's home, its DuckDB warehouse, a short simulated
    history, a vault key and a signing key for this run (the user's own signing key, if set),
    and the Airbyte jobs listed often."""
    env = dict(environ) | {
        "TENANTPULSE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "TENANTPULSE_WAREHOUSE_URL": f"duckdb:///{home / 'warehouse.duckdb'}",
        VAULT_KEYS: Fernet.generate_key().decode(),
    }
    env.pop("TENANTPULSE_RAW_PATH", None)  # the raw layer beside the demo's own DuckDB file
    env.setdefault("TENANTPULSE_SIM_HISTORY_DAYS", HISTORY_DAYS)
    # The daily partitions start with the simulated history, not Airbyte mode's 2025-01-01: a
    # tenth of the partitions for the daemon to reckon with.
    first_day = dt.date.today() - dt.timedelta(days=int(env["TENANTPULSE_SIM_HISTORY_DAYS"]))
    env.setdefault("TENANTPULSE_DAILY_PARTITIONS_START", first_day.isoformat())
    env.setdefault("TENANTPULSE_WEB_SIGNING_KEY", secrets.token_urlsafe(32))
    # The stand-in's jobs listed every 10 s, not every minute: its first sync takes 5 s, and a
    # minute's tick would be most of the wait from the click to the flow.
    env.setdefault("TENANTPULSE_AIRBYTE_JOBS_INTERVAL_SECONDS", "10")
    return env


def write_instance_config(dagster_home: Path) -> None:
    """The instance's dagster.yaml as `make dev` has it, but a run may take 15 minutes to start
    (not 3): the demo runs on whatever machine the user has, busy or not, and a run that fails
    to start ends the flow."""
    config = yaml.safe_load(DAGSTER_YAML)
    config["run_monitoring"]["start_timeout_seconds"] = RUN_START_TIMEOUT_SECONDS
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def standin_variables(oauth: OAuthStandIn, airbyte: AirbyteStandIn) -> dict[str, str]:
    """Airbyte mode against the Airbyte stand-in; the stand-in provider for every OAuth source."""
    env = {
        "TENANTPULSE_AIRBYTE_URL": airbyte.url,
        "TENANTPULSE_AIRBYTE_WORKSPACE_ID": airbyte.workspace_id,
        "TENANTPULSE_AIRBYTE_CLIENT_ID": airbyte.client_id or "",
        AIRBYTE_CLIENT_SECRET: airbyte.client_secret or "",
        DESTINATION_ID: DEMO_DESTINATION_ID,
        "TENANTPULSE_CONNECT_PROVIDER_URL": oauth.url,
    }
    for provider in CONNECT_PROVIDERS:
        prefix = f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_"
        env[prefix + "ID"], env[prefix + "SECRET"] = oauth.client_id, oauth.client_secret
    return env


@contextlib.contextmanager
def running_demo(
    home: Path, port: int, environ: Mapping[str, str], echo: Callable[[str], None]
) -> Iterator[Demo]:
    """Everything but the web app running, the demo tenant registered; stopped on the way out."""
    from tenantpulse.web.settings import load_web_settings
    from tenantpulse.web.signin import signin_token

    home = fresh_home(home)
    env = demo_environment(environ, home)
    local = load_settings(env)
    warehouse = open_warehouse(local.warehouse)
    with OAuthStandIn() as oauth, AirbyteStandIn(warehouse, local.simulator) as airbyte:
        airbyte.default_plan = FIRST_SYNC
        settings = load_settings(env | standin_variables(oauth, airbyte))
        with warehouse.connect() as conn:
            add_tenant(conn, DEMO_TENANT, DEMO_NAME, DEMO_SOURCES)
        token = signin_token(
            load_web_settings(settings).signing_key, DEMO_TENANT, DEMO_USER, SIGNIN_MINUTES
        )
        echo(f"demo home: {home} (DuckDB warehouse and Dagster instance; wiped at the next start)")
        echo(f"stand-in OAuth provider (not Shopify, GitHub or Google): {oauth.url}")
        echo(f"stand-in Airbyte API (its syncs run the local simulator): {airbyte.url}")
        write_instance_config(settings.dagster_home)
        with running_daemon(settings, dagster_instance(settings), echo):
            yield Demo(settings, f"http://127.0.0.1:{port}/signin?token={token}")


def run_connect_demo(
    home: Path, port: int, environ: Mapping[str, str], echo: Callable[[str], None]
) -> None:
    """Serve the web app until Ctrl-C, with the rest of the demo around it."""
    import uvicorn

    from tenantpulse.web.app import create_app

    with running_demo(home, port, environ, echo) as demo:
        echo(
            f"sign in as a user of {DEMO_TENANT} within {SIGNIN_MINUTES} minutes:\n"
            f"  {demo.signin_url}\n"
            f"then connect Shopify: http://127.0.0.1:{port}/connect/shopify (any shop name). "
            "The first sync and the flow follow by themselves; Ctrl-C stops everything."
        )
        uvicorn.run(create_app(demo.settings), host="127.0.0.1", port=port, log_level="warning")
        echo("stopping the daemon and its runs, then the stand-ins")
