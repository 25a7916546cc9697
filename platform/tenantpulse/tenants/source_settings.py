"""The non-secret settings each source's Airbyte connector needs when a tenant connects it.

The names are the connector specs' own field names (airbyte-source-stripe, -github, -shopify,
-google-analytics-data-api), so a tenant's settings go into the source's JSON `configuration` as
they are; the credential goes in beside them from the secrets file (terraform/modules/
tenant_connections, `credential_configuration`), never through here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tenantpulse.sources.contracts import SOURCES


@dataclass(frozen=True)
class SettingSpec:
    name: str
    required: bool
    pattern: str  # every value (each item of a list) must match this in full
    example: str
    is_list: bool = False  # given comma-separated on the command line, a JSON array in Airbyte


@dataclass(frozen=True)
class SourceSettings:
    source: str
    credential: str  # what the credential is, for messages
    settings: tuple[SettingSpec, ...]
    credential_is_json: bool = False


_DATE = r"\d{4}-\d{2}-\d{2}"
_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
_NAME_SHAPE = re.compile(r"[a-z][a-z_]{0,39}")
NOT_SHOWN = "(not shown: it may be a secret)"

SOURCE_SETTINGS: dict[str, SourceSettings] = {
    "stripe": SourceSettings(
        "stripe",
        "a Stripe secret or restricted API key",
        (
            SettingSpec("account_id", True, r"acct_[A-Za-z0-9]{1,64}", "acct_1A2b3C"),
            SettingSpec("start_date", False, _DATETIME, "2025-01-01T00:00:00Z"),
        ),
    ),
    "github": SourceSettings(
        "github",
        "a GitHub personal access token",
        (
            SettingSpec(
                "repositories",
                True,
                # owner/repo or owner/* (GitHub's name rules; never "." or "..")
                r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/(\*|(?!\.{1,2}$)[A-Za-z0-9_.-]{1,100})",
                "acme/api,acme/web",
                is_list=True,
            ),
            SettingSpec("start_date", False, _DATETIME, "2025-01-01T00:00:00Z"),
        ),
    ),
    "shopify": SourceSettings(
        "shopify",
        "a Shopify Admin API access token",
        (
            SettingSpec("shop", True, r"[a-z0-9][a-z0-9-]{0,62}", "acme-store"),
            SettingSpec("start_date", False, _DATE, "2025-01-01"),
        ),
    ),
    "google_analytics": SourceSettings(
        "google_analytics",
        "a Google service account key (JSON)",
        (
            SettingSpec("property_ids", True, r"\d{1,20}", "123456789", is_list=True),
            SettingSpec("date_ranges_start_date", False, _DATE, "2025-01-01"),
        ),
        credential_is_json=True,
    ),
}
assert tuple(SOURCE_SETTINGS) == SOURCES


def validate_source(source: object) -> str:
    if source not in SOURCE_SETTINGS:
        raise ValueError(f"unknown source {source!r}; known sources: {', '.join(SOURCES)}")
    return str(source)


def parse_settings(source: str, given: Mapping[str, str]) -> dict[str, str | list[str]]:
    """Check `name=value` settings against the source's spec; lists become lists. Raise ValueError
    naming the setting and what is allowed."""
    spec = SOURCE_SETTINGS[validate_source(source)]
    allowed = {s.name: s for s in spec.settings}
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown {source} setting {', '.join(map(_shown, unknown))}; allowed: "
            f"{_usage(spec)} (the credential is never a setting: use --credential-stdin or "
            "--credential-env)"
        )
    parsed: dict[str, str | list[str]] = {}
    for setting in spec.settings:
        raw = given.get(setting.name, "").strip()
        if not raw:
            if setting.required:
                raise ValueError(
                    f"{source} needs --setting {setting.name}=... (e.g. {setting.example})"
                )
            continue
        values = [v.strip() for v in raw.split(",")] if setting.is_list else [raw]
        if not all(re.fullmatch(setting.pattern, v) for v in values):
            # The value is not shown: a mistyped setting may be the credential.
            raise ValueError(
                f"{source} setting {setting.name} is not allowed (its value is not shown: it "
                f"may be a secret); e.g. {setting.name}={setting.example}"
            )
        parsed[setting.name] = values if setting.is_list else raw
    return parsed


def looks_like_name(text: str) -> bool:
    """Whether a setting name as given may be shown in a message: lowercase letters and
    underscores only, since a mistyped `--setting` may hold the credential."""
    return bool(_NAME_SHAPE.fullmatch(text))


def check_credential(source: str, credential: str) -> str:
    """The credential, stripped; ValueError if it is empty or not the shape the source needs."""
    spec = SOURCE_SETTINGS[validate_source(source)]
    credential = credential.strip()
    if not credential:
        raise ValueError(f"the {source} credential is empty; give {spec.credential}")
    if spec.credential_is_json:
        try:
            json.loads(credential)
        except ValueError:
            raise ValueError(
                f"the {source} credential is not JSON; give {spec.credential}"
            ) from None
    return credential


def _shown(name: str) -> str:
    return name if looks_like_name(name) else NOT_SHOWN


def _usage(spec: SourceSettings) -> str:
    return ", ".join(
        f"{s.name}={s.example}" + ("" if s.required else " (optional)") for s in spec.settings
    )
