"""Read terraform/ without Terraform: parse the files (python-hcl2) and expand the module's
for_each resources for a tenants map, the way `terraform plan` would name and fill them.

Only the string attributes that identify a tenant's resources are evaluated (`${each.key}`,
`${each.value.<attr>}`, `${var.<name>}` with the variable's default); anything else left in a
`${...}` is an error, so a change to those expressions cannot pass unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path

import hcl2

REPO = Path(__file__).resolve().parents[1]
TERRAFORM = REPO / "terraform"
MODULE = TERRAFORM / "modules" / "tenant_connections"
EXAMPLE = TERRAFORM / "environments" / "example"
_INTERNAL_KEYS = {"__comments__", "__inline_comments__", "__is_block__"}


def plain(value):
    """python-hcl2's output without its quoting of literals and its bookkeeping keys."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items() if k not in _INTERNAL_KEYS}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load(path: Path) -> dict:
    with path.open() as handle:
        return plain(hcl2.load(handle))


def module_blocks(kind: str, folder: Path = MODULE) -> dict:
    """Every `kind` block (resource, variable, locals, output) of the folder's .tf files, merged."""
    merged: dict = {}
    for path in sorted(folder.glob("*.tf")):
        for block in load(path).get(kind, []):
            for name, body in block.items():
                if kind == "resource":
                    merged.setdefault(name, {}).update(body)
                else:
                    merged[name] = body
    return merged


def variable_defaults(folder: Path = MODULE) -> dict:
    return {
        name: body["default"]
        for name, body in module_blocks("variable", folder).items()
        if "default" in body
    }


_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def render(template: str, key: str, value: dict, variables: dict) -> str:
    def one(match: re.Match) -> str:
        expression = match.group(1).strip()
        if expression == "each.key":
            return key
        if expression.startswith("each.value."):
            return str(value[expression.removeprefix("each.value.")])
        if expression.startswith("var.") and expression[4:] in variables:
            return str(variables[expression[4:]])
        raise ValueError(f"cannot evaluate ${{{expression}}} in {template!r}")

    return _REFERENCE.sub(one, template)


def expand(tenants_tfvars: dict, attributes=("name", "namespace_format", "prefix")) -> dict:
    """`terraform plan`'s resource addresses for the tenants map, each with its evaluated
    identifying attributes: {'airbyte_connection.tenant["acme/stripe"]': {...}, ...}."""
    variables = variable_defaults()
    connections = tenants_tfvars["connections"]
    instances: dict = {}
    for resource_type, resources in module_blocks("resource").items():
        for resource_name, body in resources.items():
            if body.get("for_each") != "${var.connections}":
                continue
            for key, value in connections.items():
                instances[f'{resource_type}.{resource_name}["{key}"]'] = {
                    attribute: render(body[attribute], key, value, variables)
                    for attribute in attributes
                    if attribute in body
                }
    return instances
