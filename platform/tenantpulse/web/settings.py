"""The web app's settings, read from the variables `config.load_settings` was given
(`settings.source_variables`), so nothing here looks at the environment itself."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from tenantpulse.config import Settings, SettingsError

SIGNING_KEY = "TENANTPULSE_WEB_SIGNING_KEY"
DATABASE_URL = "TENANTPULSE_WEB_DATABASE_URL"
SESSION_MINUTES = "TENANTPULSE_WEB_SESSION_MINUTES"
WEB_ROLE = "tenantpulse_web"  # the Postgres role the app reads through (web/roles.py)
MIN_KEY_LENGTH = 32


@dataclass(frozen=True)
class WebSettings:
    signing_key: bytes
    session_minutes: int
    # Postgres: the URL the app logs in with, as WEB_ROLE (never the flow's owner role).
    database_url: str | None

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return (
            f"WebSettings(session_minutes={self.session_minutes}, database_url={self.database_url})"
        )


def load_web_settings(settings: Settings) -> WebSettings:
    env = settings.source_variables
    key = env.get(SIGNING_KEY) or ""
    if len(key) < MIN_KEY_LENGTH:
        raise SettingsError(
            f"{SIGNING_KEY} is {'not set' if not key else 'too short'}; allowed: a random secret "
            f'of at least {MIN_KEY_LENGTH} characters, e.g. `python -c "import secrets; '
            f'print(secrets.token_urlsafe(32))"`'
        )
    raw_minutes = env.get(SESSION_MINUTES) or "480"
    if not raw_minutes.isdigit() or not 1 <= int(raw_minutes) <= 10080:
        raise SettingsError(f"{SESSION_MINUTES}={raw_minutes!r}; allowed: 1..10080 minutes")
    database_url = None
    if settings.warehouse.dialect == "postgres":
        database_url = env.get(DATABASE_URL) or _as_web_role(settings.warehouse.postgres_dsn)
        parts = urlsplit(database_url)
        if parts.scheme not in ("postgresql", "postgres") or parts.password:
            raise SettingsError(
                f"{DATABASE_URL} must be a postgresql:// URL without a password (put it in "
                "PGPASSWORD or ~/.pgpass)"
            )
    return WebSettings(
        signing_key=key.encode(), session_minutes=int(raw_minutes), database_url=database_url
    )


def _as_web_role(dsn: str | None) -> str:
    """The warehouse's URL with the web role as its user."""
    parts = urlsplit(dsn or "")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{WEB_ROLE}@{host}"))
