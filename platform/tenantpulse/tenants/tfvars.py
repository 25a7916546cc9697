"""The two files terraform/ reads: the tenants map and the tenant credentials.

- tenants file (`TENANTPULSE_TENANTS_TFVARS`): `{"connections": {"<tenant>/<source>": {...}}}`,
  rendered whole from `ops.tenant_connections`, no secret in it, keys and values sorted so that
  adding a tenant leaves every other tenant's entry byte for byte as it was.
- secrets file (`TENANTPULSE_TENANT_SECRETS_TFVARS`): `{"connection_secrets": {"<key>": "..."}}`,
  mode 0600, refused inside a git work tree, so a credential cannot be committed by accident.
  Terraform reads it with `-var-file`; the module's variable is `sensitive`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tenantpulse.config import SettingsError
from tenantpulse.tenants.connections import TenantConnection

SECRETS_VARIABLE = "connection_secrets"
CONNECTIONS_VARIABLE = "connections"


def render_tenants_tfvars(connections: Iterable[TenantConnection]) -> dict:
    """The `connections` variable of terraform/modules/tenant_connections, keyed `<tenant>/<source>`."""
    return {
        CONNECTIONS_VARIABLE: {
            c.key: {
                "tenant_id": c.tenant_id,
                "source": c.source,
                "workspace": c.workspace,
                # A JSON string: connectors' settings differ in shape, and a Terraform map of
                # objects needs one type for all its values.
                "configuration_json": json.dumps(c.settings, sort_keys=True),
            }
            for c in sorted(connections, key=lambda c: c.key)
        }
    }


def write_tenants_tfvars(path: Path, connections: Iterable[TenantConnection]) -> dict:
    rendered = render_tenants_tfvars(connections)
    _write_json(path, rendered, mode=0o644)
    return rendered


def read_tfvars(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise SettingsError(f"{path} is not valid JSON; fix or remove it") from None


def store_secret(path: Path, key: str, secret: str) -> None:
    """Set one connection's credential in the secrets file (created 0600 outside any git tree)."""
    refuse_inside_git_work_tree(path)
    secrets = read_tfvars(path).get(SECRETS_VARIABLE, {})
    secrets[key] = secret
    _write_json(path, {SECRETS_VARIABLE: dict(sorted(secrets.items()))}, mode=0o600)


def remove_secret(path: Path, key: str) -> bool:
    """Drop one connection's credential; False if it was not there."""
    secrets = read_tfvars(path).get(SECRETS_VARIABLE, {})
    if key not in secrets:
        return False
    del secrets[key]
    _write_json(path, {SECRETS_VARIABLE: secrets}, mode=0o600)
    return True


def refuse_inside_git_work_tree(path: Path) -> None:
    for folder in path.resolve().parents:
        if (folder / ".git").exists():  # a directory in a clone, a file in a worktree
            raise SettingsError(
                f"TENANTPULSE_TENANT_SECRETS_TFVARS={str(path)!r} is inside the git work tree "
                f"{folder}; allowed: a path outside any repository (set "
                "TENANTPULSE_TENANT_SECRETS_TFVARS or TENANTPULSE_HOME), so credentials cannot "
                "be committed"
            )


def _write_json(path: Path, content: dict, *, mode: int) -> None:
    """Write atomically (a reader sees the old or the new file), with the mode set before any byte
    is written, so a secret is never readable by others even for a moment."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            json.dump(content, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
