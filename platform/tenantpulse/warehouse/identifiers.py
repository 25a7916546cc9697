"""Identifier validation and quoting: the only way a name reaches SQL text."""

from __future__ import annotations

import re

# Letters, digits and underscore, not starting with a digit, within Postgres's 63-byte limit.
# Upper case is allowed because Airbyte keeps source column names such as `totalUsers`.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class IdentifierError(ValueError):
    """A schema, table or column name that is not a plain identifier."""


def quote_ident(name: str) -> str:
    """Validate `name` and return it double-quoted (case kept on both DuckDB and Postgres)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise IdentifierError(
            f"invalid SQL identifier {name!r}: use 1-63 letters, digits and underscores, "
            "not starting with a digit"
        )
    return f'"{name}"'


def qualified(schema: str, table: str) -> str:
    """`"schema"."table"`, both parts validated."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"
