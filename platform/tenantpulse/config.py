"""The one place that reads environment variables: a typed, validated settings object.

Everything else receives a `Settings`; nothing else looks at `os.environ`.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

DEFAULT_HOME = ".tenantpulse"
DEFAULT_PLAYBOOKS = Path(__file__).parent / "actions" / "playbooks.yaml"
DBT_PROJECT_DIR_SETTING = "TENANTPULSE_DBT_PROJECT_DIR"


class SettingsError(ValueError):
    """A setting has a value that is not allowed; the message names the setting and what is."""


@dataclass(frozen=True)
class WarehouseUrl:
    """Where the warehouse lives: a DuckDB file or a Postgres database."""

    dialect: str  # "duckdb" or "postgres"
    url: str  # as given (never with a password: parse_warehouse_url refuses one)
    duckdb_path: Path | None = None
    postgres_dsn: str | None = None  # a libpq URL (postgresql://...) that psycopg accepts
    # DuckDB only: the raw layer's root folder, Airbyte's file layout under it (Postgres keeps
    # raw tables, as Airbyte's Postgres destination writes them).
    raw_path: Path | None = None

    def __str__(self) -> str:
        if self.dialect == "duckdb":
            return f"duckdb:///{self.duckdb_path}"
        return self.postgres_dsn or ""


@dataclass(frozen=True)
class SimulatorSettings:
    seed: int
    history_days: int
    end_date: dt.date
    volume: float


@dataclass(frozen=True)
class LlmSettings:
    """The insights' LLM writer: on when OPENAI_API_KEY is set (see docs/insights.md)."""

    enabled: bool
    base_url: str | None  # any OpenAI-compatible server; None: OpenAI's own
    model: str
    timeout_seconds: float
    max_retries: int
    concurrency: int
    input_price_per_mtok: float  # US dollars per million prompt tokens, for the cost metadata
    output_price_per_mtok: float


@dataclass(frozen=True)
class ActionSettings:
    playbooks_path: Path
    dry_run: bool  # evaluate and record what would fire, send nothing
    webhook_secret: str | None  # shared secret of the webhook signature
    webhook_timeout_seconds: float
    webhook_max_attempts: int
    slack_token: str | None
    slack_api_url: str  # Slack's Web API; tests point it at a stand-in on 127.0.0.1

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return (
            f"ActionSettings(playbooks_path={self.playbooks_path!s}, dry_run={self.dry_run}, "
            f"webhook_secret={'***' if self.webhook_secret else None}, "
            f"slack_token={'***' if self.slack_token else None}, slack_api_url={self.slack_api_url})"
        )


@dataclass(frozen=True)
class TerraformVarsSettings:
    """The files `tenantpulse tenants connect` writes for terraform/ (see terraform/README.md)."""

    tenants_file: Path  # the non-secret connections map (tenant, source, settings)
    secrets_file: Path  # the credentials, 0600, never inside a git work tree


@dataclass(frozen=True)
class AirbyteSettings:
    """Airbyte mode (docs/airbyte.md): on when TENANTPULSE_AIRBYTE_URL is set. The client secret is
    not held here: the Dagster resource reads it from TENANTPULSE_AIRBYTE_CLIENT_SECRET at run time."""

    url: str  # the server's root; the REST API is <url>/api/public/v1, the config API <url>/api/v1
    workspace_id: str
    client_id: str | None  # None: no authentication (a self-managed server without auth)
    poll_timeout_seconds: float
    poll_interval_seconds: float
    concurrency: int  # connections synced at a time in one step
    jobs_interval_seconds: int  # between two listings of the workspace's jobs (airbyte_jobs_sensor)

    @property
    def rest_api_base_url(self) -> str:
        return f"{self.url.rstrip('/')}/api/public/v1"

    @property
    def configuration_api_base_url(self) -> str:
        return f"{self.url.rstrip('/')}/api/v1"


AIRBYTE_CLIENT_SECRET = "TENANTPULSE_AIRBYTE_CLIENT_SECRET"


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: WarehouseUrl
    dagster_home: Path
    simulator: SimulatorSettings
    daily_partitions_start: dt.date  # first day of the daily partitions (dbt marts, analysis)
    # last day of the daily partitions; None: today (UTC). A past day replays the flow as of then.
    daily_partitions_end: dt.date | None
    llm: LlmSettings
    actions: ActionSettings
    terraform: TerraformVarsSettings
    dbt_project_dir: Path  # the folder holding dbt_project.yml and profiles.yml
    # FLOW_AFTER_EACH_SYNC: a whole flow after each batch of new syncs; FLOW_DAILY: each batch is
    # only landed, and the rest of the flow runs once a day (daily_flow_schedule).
    flow_after_syncs: str = "each"
    airbyte: AirbyteSettings | None = None  # None: local mode (the simulator writes raw data)
    # The variables these settings were read from (TENANTPULSE_*, OPENAI_*, DAGSTER_*, PG*): what
    # the Dagster processes the CLI starts must see to read the same settings.
    # Not in repr(): they hold the secrets (OPENAI_API_KEY, PGPASSWORD, ...).
    source_variables: Mapping[str, str] = field(default_factory=dict, repr=False)


FLOW_AFTER_EACH_SYNC, FLOW_DAILY = "each", "daily"
OWN_VARIABLE_PREFIXES = ("TENANTPULSE_", "OPENAI_", "DAGSTER_", "PG")


def export_environment(variables: Mapping[str, str]) -> None:
    """Set variables in this process's environment, for a subprocess that a library starts with
    it (dbt under dagster-dbt): the one place the package writes the environment."""
    os.environ.update(variables)


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of a Dagster process started for these settings (daemon, run launch): the
    machine's, without other values of the variables the settings read, plus those the settings
    were read from and DAGSTER_HOME."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLE_PREFIXES)}
    return (
        inherited | dict(settings.source_variables) | {"DAGSTER_HOME": str(settings.dagster_home)}
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise SettingsError naming the first bad one."""
    env = os.environ if environ is None else environ
    home = Path(env.get("TENANTPULSE_HOME") or DEFAULT_HOME).expanduser().resolve()
    warehouse = parse_warehouse_url(
        env.get("TENANTPULSE_WAREHOUSE_URL") or f"duckdb:///{home / 'warehouse.duckdb'}",
        raw_path=env.get("TENANTPULSE_RAW_PATH") or None,
    )
    dagster_home = Path(env.get("DAGSTER_HOME") or home / "dagster_home").expanduser().resolve()
    simulator = SimulatorSettings(
        seed=_int_setting(env, "TENANTPULSE_SIM_SEED", default=7, low=0, high=2**32 - 1),
        history_days=_int_setting(
            env, "TENANTPULSE_SIM_HISTORY_DAYS", default=120, low=28, high=1095
        ),
        end_date=_date_setting(
            env, "TENANTPULSE_SIM_END_DATE", default=dt.datetime.now(dt.UTC).date()
        ),
        volume=_float_setting(env, "TENANTPULSE_SIM_VOLUME", default=1.0, low=0.01, high=100.0),
    )
    # Partitions before any data read "0% filled" in the UI and cost Dagster bookkeeping on a
    # first build: in local mode they start with the simulated history.
    first_simulated_day = simulator.end_date - dt.timedelta(days=simulator.history_days)
    daily_partitions_start = _date_setting(
        env,
        "TENANTPULSE_DAILY_PARTITIONS_START",
        default=dt.date(2025, 1, 1) if env.get("TENANTPULSE_AIRBYTE_URL") else first_simulated_day,
    )
    daily_partitions_end = None
    if env.get("TENANTPULSE_DAILY_PARTITIONS_END"):
        daily_partitions_end = _date_setting(
            env, "TENANTPULSE_DAILY_PARTITIONS_END", default=daily_partitions_start
        )
        if daily_partitions_end < daily_partitions_start:
            raise SettingsError(
                f"TENANTPULSE_DAILY_PARTITIONS_END={daily_partitions_end} is before "
                f"TENANTPULSE_DAILY_PARTITIONS_START={daily_partitions_start}; allowed: a day on "
                "or after the start"
            )
    llm = LlmSettings(
        enabled=bool(env.get("OPENAI_API_KEY")),
        base_url=_url_setting(env, "OPENAI_BASE_URL"),
        model=env.get("TENANTPULSE_LLM_MODEL") or "gpt-4o-mini",
        timeout_seconds=_float_setting(
            env, "TENANTPULSE_LLM_TIMEOUT_SECONDS", default=30.0, low=0.1, high=600.0
        ),
        max_retries=_int_setting(env, "TENANTPULSE_LLM_MAX_RETRIES", default=3, low=0, high=10),
        concurrency=_int_setting(env, "TENANTPULSE_LLM_CONCURRENCY", default=4, low=1, high=64),
        # gpt-4o-mini's list prices; set both for another model.
        input_price_per_mtok=_float_setting(
            env, "TENANTPULSE_LLM_INPUT_PRICE_PER_MTOK", default=0.15, low=0.0, high=1000.0
        ),
        output_price_per_mtok=_float_setting(
            env, "TENANTPULSE_LLM_OUTPUT_PRICE_PER_MTOK", default=0.60, low=0.0, high=1000.0
        ),
    )
    terraform = TerraformVarsSettings(
        tenants_file=_tfvars_path_setting(
            env, "TENANTPULSE_TENANTS_TFVARS", default=home / "terraform/tenants.auto.tfvars.json"
        ),
        secrets_file=_tfvars_path_setting(
            env,
            "TENANTPULSE_TENANT_SECRETS_TFVARS",
            default=home / "terraform/tenant_secrets.tfvars.json",
        ),
    )
    if terraform.tenants_file == terraform.secrets_file:
        raise SettingsError(
            f"TENANTPULSE_TENANT_SECRETS_TFVARS={str(terraform.secrets_file)!r} is the same file as "
            "TENANTPULSE_TENANTS_TFVARS; allowed: a separate file, so credentials never share a "
            "file with the tenants map"
        )
    return Settings(
        home=home,
        warehouse=warehouse,
        dagster_home=dagster_home,
        simulator=simulator,
        daily_partitions_start=daily_partitions_start,
        daily_partitions_end=daily_partitions_end,
        llm=llm,
        actions=load_action_settings(env),
        terraform=terraform,
        dbt_project_dir=load_dbt_project_dir(env),
        flow_after_syncs=_choice_setting(
            env, "TENANTPULSE_FLOW_AFTER_SYNCS", (FLOW_AFTER_EACH_SYNC, FLOW_DAILY)
        ),
        airbyte=_airbyte_settings(env),
        source_variables={k: v for k, v in env.items() if k.startswith(OWN_VARIABLE_PREFIXES)},
    )


def load_action_settings(env: Mapping[str, str]) -> ActionSettings:
    playbooks = Path(env.get("TENANTPULSE_PLAYBOOKS") or DEFAULT_PLAYBOOKS).expanduser()
    if not playbooks.is_file():
        raise SettingsError(
            f"TENANTPULSE_PLAYBOOKS={str(playbooks)!r} is not a file; allowed: the path of a "
            "playbooks YAML file (see docs/actions.md)"
        )
    slack_api_url = env.get("TENANTPULSE_SLACK_API_URL") or "https://slack.com/api/"
    if urlsplit(slack_api_url).scheme not in ("http", "https"):
        raise SettingsError(
            f"TENANTPULSE_SLACK_API_URL={_redact_password(slack_api_url)!r} is not supported; "
            "allowed: an http(s) URL"
        )
    return ActionSettings(
        playbooks_path=playbooks.resolve(),
        dry_run=_bool_setting(env, "TENANTPULSE_ACTIONS_DRY_RUN", default=False),
        webhook_secret=env.get("TENANTPULSE_WEBHOOK_SECRET") or None,
        webhook_timeout_seconds=_float_setting(
            env, "TENANTPULSE_WEBHOOK_TIMEOUT_SECONDS", default=10.0, low=0.1, high=120.0
        ),
        webhook_max_attempts=_int_setting(
            env, "TENANTPULSE_WEBHOOK_MAX_ATTEMPTS", default=4, low=1, high=10
        ),
        slack_token=env.get("TENANTPULSE_SLACK_TOKEN") or None,
        slack_api_url=slack_api_url if slack_api_url.endswith("/") else slack_api_url + "/",
    )


VAULT_KEYS = "TENANTPULSE_VAULT_KEYS"
CONNECT_PROVIDERS = ("stripe", "github", "shopify", "google_analytics")


@dataclass(frozen=True)
class ConnectSettings:
    """The connect service's settings (tenantpulse.connect): secrets, so kept out of `Settings`
    (which the UI and logs may show) and read where they are used."""

    vault_keys: tuple[str, ...]  # Fernet keys, newest first
    clients: dict[str, tuple[str, str]]  # provider -> (OAuth client id, client secret)
    provider_url: str | None  # every provider's endpoints on this host instead (a stand-in)
    timeout_seconds: float  # of one request to a provider's token endpoint

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return (
            f"ConnectSettings(vault_keys=<{len(self.vault_keys)} keys>, "
            f"clients={sorted(self.clients)}, provider_url={self.provider_url}, "
            f"timeout_seconds={self.timeout_seconds})"
        )


def load_connect_settings(environ: Mapping[str, str] | None = None) -> ConnectSettings:
    env = os.environ if environ is None else environ
    keys = tuple(k.strip() for k in (env.get(VAULT_KEYS) or "").split(",") if k.strip())
    for position, key in enumerate(keys, start=1):
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except ValueError:
            valid = False
        if not valid:  # the key itself is never shown
            raise SettingsError(
                f"{VAULT_KEYS}: key {position} of {len(keys)} is not a Fernet key; allowed: "
                "comma-separated keys of 32 url-safe base64-encoded bytes, newest first (make one "
                "with `tenantpulse connect new-key`)"
            )
    clients = {}
    for provider in CONNECT_PROVIDERS:
        prefix = f"TENANTPULSE_CONNECT_{provider.upper()}_CLIENT_"
        client_id, secret = env.get(prefix + "ID") or "", env.get(prefix + "SECRET") or ""
        if bool(client_id) != bool(secret):
            raise SettingsError(f"set both {prefix}ID and {prefix}SECRET, or neither")
        if client_id:
            clients[provider] = (client_id, secret)
    return ConnectSettings(
        vault_keys=keys,
        clients=clients,
        provider_url=_url_setting(env, "TENANTPULSE_CONNECT_PROVIDER_URL"),
        timeout_seconds=_float_setting(
            env, "TENANTPULSE_CONNECT_TIMEOUT_SECONDS", default=10.0, low=0.1, high=120.0
        ),
    )


def load_dbt_project_dir(environ: Mapping[str, str] | None = None) -> Path:
    """TENANTPULSE_DBT_PROJECT_DIR (relative to the working directory), or by default the
    repository's `dbt_project/`: the first folder above this package holding
    `dbt_project/dbt_project.yml` (a checkout with an editable install, or a virtualenv inside
    the checkout). For callers without a `Settings`; the others use `settings.dbt_project_dir`."""
    env = os.environ if environ is None else environ
    raw = env.get(DBT_PROJECT_DIR_SETTING)
    if raw:
        project_dir = Path(raw).expanduser().resolve()
        if not (project_dir / "dbt_project.yml").is_file():
            raise SettingsError(
                f"{DBT_PROJECT_DIR_SETTING}={raw!r} holds no dbt_project.yml; allowed: the path "
                "of the repository's dbt_project folder"
            )
        return project_dir
    package_dir = Path(__file__).resolve().parent
    for folder in package_dir.parents:
        if (folder / "dbt_project" / "dbt_project.yml").is_file():
            return folder / "dbt_project"
    raise SettingsError(
        f"{DBT_PROJECT_DIR_SETTING} is not set and no folder above {package_dir} holds "
        "dbt_project/dbt_project.yml; allowed: the path of the repository's dbt_project folder"
    )


def _airbyte_settings(env: Mapping[str, str]) -> AirbyteSettings | None:
    url = _url_setting(env, "TENANTPULSE_AIRBYTE_URL")
    if url is None:
        return None
    workspace_id = env.get("TENANTPULSE_AIRBYTE_WORKSPACE_ID") or ""
    if not workspace_id.strip():
        raise SettingsError(
            "TENANTPULSE_AIRBYTE_WORKSPACE_ID is not set; allowed: the Airbyte workspace id "
            "(required when TENANTPULSE_AIRBYTE_URL is set)"
        )
    client_id = env.get("TENANTPULSE_AIRBYTE_CLIENT_ID") or None
    if bool(client_id) != bool(env.get(AIRBYTE_CLIENT_SECRET)):
        missing = AIRBYTE_CLIENT_SECRET if client_id else "TENANTPULSE_AIRBYTE_CLIENT_ID"
        raise SettingsError(
            f"{missing} is not set; allowed: both TENANTPULSE_AIRBYTE_CLIENT_ID and "
            f"{AIRBYTE_CLIENT_SECRET}, or neither (a server without authentication)"
        )
    return AirbyteSettings(
        url=url,
        workspace_id=workspace_id.strip(),
        client_id=client_id,
        poll_timeout_seconds=_float_setting(
            env, "TENANTPULSE_AIRBYTE_POLL_TIMEOUT_SECONDS", default=3600.0, low=1.0, high=86400.0
        ),
        poll_interval_seconds=_float_setting(
            env, "TENANTPULSE_AIRBYTE_POLL_INTERVAL_SECONDS", default=10.0, low=0.01, high=600.0
        ),
        concurrency=_int_setting(
            env, "TENANTPULSE_AIRBYTE_CONCURRENCY", default=8, low=1, high=256
        ),
        jobs_interval_seconds=_int_setting(
            env, "TENANTPULSE_AIRBYTE_JOBS_INTERVAL_SECONDS", default=60, low=5, high=3600
        ),
    )


# Folders of the operating system: a warehouse file there is a mistyped path, never meant.
SYSTEM_FOLDERS = tuple(
    Path(p)
    for p in ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr")
)
DUCKDB_MAGIC = b"DUCK"  # bytes 8..11 of every DuckDB database file


def default_raw_path(duckdb_path: Path) -> Path:
    """The raw layer's folder beside a DuckDB file: `warehouse.duckdb` -> `warehouse_raw/`."""
    return duckdb_path.with_name(f"{duckdb_path.stem}_raw")


def parse_warehouse_url(url: str, raw_path: str | None = None) -> WarehouseUrl:
    """`duckdb:///<relative path>` (from the working directory), `duckdb:////<absolute path>`, or
    a `postgresql://` URL without a password (a `+psycopg`/`+psycopg2` driver suffix and
    `postgres://` are accepted). `raw_path` (TENANTPULSE_RAW_PATH): DuckDB's raw layer folder,
    by default beside the file (default_raw_path). See README, "Settings"."""
    allowed = "allowed: duckdb:///<file path> or postgresql://user@host:port/database"
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "duckdb":
        path = rest[1:] if rest.startswith("/") else ""
        if not path or path == ":memory:":
            raise SettingsError(
                f"TENANTPULSE_WAREHOUSE_URL={url!r} names no DuckDB file; {allowed}"
            )
        duckdb_path = _duckdb_path(url, path)
        return WarehouseUrl(
            dialect="duckdb",
            url=url,
            duckdb_path=duckdb_path,
            raw_path=_raw_path(raw_path) if raw_path else default_raw_path(duckdb_path),
        )
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        dsn = "postgresql://" + rest
        parts = urlsplit(dsn)
        if not parts.path.strip("/"):
            raise SettingsError(
                f"TENANTPULSE_WAREHOUSE_URL={_redact_password(dsn)!r} names no database; {allowed}"
            )
        if parts.password or any(k.endswith("password") for k, _ in parse_qsl(parts.query)):
            raise SettingsError(
                f"TENANTPULSE_WAREHOUSE_URL={_redact_password(dsn)!r} holds a password, which "
                "the Dagster UI would show (the URL is the warehouse resource's config); allowed: "
                "the URL without it, and the password in PGPASSWORD (the platform's connections) "
                "and TENANTPULSE_PG_PASSWORD (dbt's profile), or in ~/.pgpass"
            )
        return WarehouseUrl(dialect="postgres", url=url, postgres_dsn=dsn)
    raise SettingsError(
        f"TENANTPULSE_WAREHOUSE_URL={_redact_password(url)!r} is not supported; {allowed}"
    )


def _duckdb_path(url: str, path: str) -> Path:
    """The DuckDB file `url` names, refused when it cannot be the file the user meant: a
    relative path that reads like an absolute one, a file in a system folder, or an existing
    file that is not a DuckDB database."""
    given = Path(path).expanduser()
    explicit = path.startswith(("./", "../"))  # Path() drops a leading ./
    if not given.is_absolute() and not explicit and len(given.parts) > 1:
        first = given.parts[0]
        if (Path("/") / first).is_dir() and not (Path.cwd() / first).exists():
            raise SettingsError(
                f"TENANTPULSE_WAREHOUSE_URL={url!r} is the relative path {given} (from "
                f"{Path.cwd()}), though /{first} exists; allowed: duckdb:////{given} for the "
                f"absolute path, duckdb:///./{given} for the relative one"
            )
    resolved = given.resolve()
    system = [f for f in SYSTEM_FOLDERS if resolved.is_relative_to(f.resolve())]
    if system:
        raise SettingsError(
            f"TENANTPULSE_WAREHOUSE_URL={url!r} is a file in the system folder {system[0]}; "
            "allowed: a DuckDB file in a folder of your own (duckdb:////<absolute path>)"
        )
    if resolved.exists():
        if not resolved.is_file():
            raise SettingsError(
                f"TENANTPULSE_WAREHOUSE_URL={url!r} names {resolved}, which is not a file; "
                "allowed: a DuckDB database file, or a path where none exists yet"
            )
        try:
            with resolved.open("rb") as handle:
                header = handle.read(12)
        except OSError as error:
            raise SettingsError(
                f"TENANTPULSE_WAREHOUSE_URL={url!r} names {resolved}, which cannot be read "
                f"({error.strerror}); allowed: a DuckDB database file this user can read and write"
            ) from None
        if header[8:] != DUCKDB_MAGIC:
            raise SettingsError(
                f"TENANTPULSE_WAREHOUSE_URL={url!r} names {resolved}, an existing file "
                "that is not a DuckDB database; allowed: a DuckDB database file, or a path "
                "where none exists yet"
            )
    return resolved


def _raw_path(raw: str) -> Path:
    """TENANTPULSE_RAW_PATH as a folder path, refused where it cannot be one of the user's own."""
    resolved = Path(raw).expanduser().resolve()
    system = [f for f in SYSTEM_FOLDERS if resolved.is_relative_to(f.resolve())]
    if system:
        raise SettingsError(
            f"TENANTPULSE_RAW_PATH={raw!r} is in the system folder {system[0]}; allowed: a folder "
            "of your own"
        )
    if resolved.exists() and not resolved.is_dir():
        raise SettingsError(
            f"TENANTPULSE_RAW_PATH={raw!r} names {resolved}, which is not a folder; allowed: a "
            "folder, or a path where none exists yet"
        )
    return resolved


def _url_setting(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw in (None, ""):
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"{name}={_redact_password(raw)!r} is not a URL; allowed: http(s)://host[:port]/path"
        )
    return raw


def _tfvars_path_setting(env: Mapping[str, str], name: str, *, default: Path) -> Path:
    raw = env.get(name)
    path = Path(raw).expanduser().resolve() if raw else default
    # Terraform reads a -var-file as JSON only when its name ends in .json.
    if not path.name.endswith(".tfvars.json"):
        raise SettingsError(
            f"{name}={str(path)!r} is not a Terraform JSON variables file; allowed: a path whose "
            "name ends in .tfvars.json"
        )
    return path


def _redact_password(url: str) -> str:
    """The URL for a message: a password in its user part or its query replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL urllib can read (a bad port, a bracket): nothing is shown
        return "(not shown: not a URL)"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not password and not any(name.endswith("password") for name, _ in query):
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1) if password else parts.netloc
    shown = "&".join(
        f"{name}=***" if name.endswith("password") else f"{name}={value}" for name, value in query
    )
    return urlunsplit(parts._replace(netloc=netloc, query=shown))


def _int_setting(env: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer; allowed: {low}..{high}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range; allowed: {low}..{high}")
    return value


def _choice_setting(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices`; the first when unset."""
    value = env.get(name) or choices[0]
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not allowed; allowed: {', '.join(choices)}")
    return value


def _float_setting(
    env: Mapping[str, str], name: str, *, default: float, low: float, high: float
) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; allowed: {low}..{high}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range; allowed: {low}..{high}")
    return value


def _bool_setting(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(
        f"{name}={raw!r} is not a yes/no value; allowed: true, false, 1, 0, yes, no"
    )


def _date_setting(env: Mapping[str, str], name: str, *, default: dt.date) -> dt.date:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a date; allowed: YYYY-MM-DD") from None
