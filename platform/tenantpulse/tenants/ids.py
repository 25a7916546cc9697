"""Tenant ids: the one check every id passes before it is used anywhere (schema names, SQL, keys)."""

from __future__ import annotations

import re

MAX_TENANT_ID_LENGTH = 48  # "user_" + id stays well inside Postgres's 63-byte identifier limit
_TENANT_ID = re.compile(rf"^[a-z0-9][a-z0-9_]{{0,{MAX_TENANT_ID_LENGTH - 1}}}$")


class TenantIdError(ValueError):
    """A tenant id that is not allowed."""


def validate_tenant_id(tenant_id: object) -> str:
    """Return the id if it is 1-48 lowercase letters, digits or underscores (not starting with an
    underscore); raise TenantIdError otherwise."""
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        shown = repr(tenant_id) if len(repr(tenant_id)) <= 80 else repr(tenant_id)[:77] + "..."
        raise TenantIdError(
            f"invalid tenant id {shown}: use 1-{MAX_TENANT_ID_LENGTH} characters of lowercase "
            "letters, digits and underscores, starting with a letter or digit"
        )
    return tenant_id
