"""Check raw rows against a stream contract: coerce each column to its type, and say why a row
cannot be landed (a missing key, a value of the wrong type) instead of dropping it."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tenantpulse.sources.contracts import StreamContract

_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}


@dataclass
class ValidatedRows:
    valid: pd.DataFrame  # typed contract columns + Airbyte columns, contract order
    rejected: pd.DataFrame  # the raw rows that failed, as read
    reasons: pd.Series  # one reason per rejected row, same index as `rejected`


def validate_rows(
    contract: StreamContract, raw: pd.DataFrame, json_typed: Collection[str] = ()
) -> ValidatedRows:
    """Type every contract column of `raw` (a missing column becomes NULL) and split off rows with
    a NULL key or a value that does not convert. `json_typed` names columns the warehouse stores
    as JSON, whose values need no parsing to be known valid."""
    typed = {}
    problems = pd.Series("", index=raw.index, dtype=object)
    for column in contract.all_columns:
        if column.name not in raw.columns:
            typed[column.name] = pd.Series(None, index=raw.index, dtype=object)
            continue
        values = raw[column.name]
        if column.type == "json" and column.name in json_typed:
            converted = values.astype(object).where(values.notna(), None)
        else:
            converted = _convert(values, column.type)
        failed = values.notna() & converted.isna()
        if failed.any():
            shown = values[failed].map(lambda v: repr(v)[:40])
            problems[failed] += f"{column.name}: " + shown + f" is not a {column.type}; "
        typed[column.name] = converted
    frame = pd.DataFrame(typed, index=raw.index)
    for name in contract.required_columns:
        missing = frame[name].isna() & raw.get(name, pd.Series(None, index=raw.index)).isna()
        problems[missing] += f"{name}: missing (required); "
    bad = problems != ""
    return ValidatedRows(
        valid=frame[~bad].reset_index(drop=True),
        rejected=raw[bad],
        reasons=problems[bad].str.rstrip("; "),
    )


def _convert(values: pd.Series, logical_type: str) -> pd.Series:
    if logical_type == "bigint":
        numbers = pd.to_numeric(values.astype(object), errors="coerce")
        whole = numbers.notna() & (numbers == np.floor(numbers.fillna(0)))
        return numbers.where(whole).astype("Int64")
    if logical_type == "decimal":
        return pd.to_numeric(values.astype(object), errors="coerce").astype("float64")
    if logical_type == "varchar":
        if isinstance(values.dtype, pd.StringDtype):
            return values.astype(object).where(values.notna(), None)
        return values.astype(object).map(lambda v: None if _is_null(v) else str(v))
    if logical_type == "timestamptz":
        return pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    if logical_type == "date":
        stamps = pd.to_datetime(values, errors="coerce", format="mixed")
        return stamps.map(lambda v: None if pd.isna(v) else v.date()).astype(object)
    if logical_type == "boolean":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean")
        return values.astype(object).map(_to_bool).astype("boolean")
    if logical_type == "json":
        return values.astype(object).map(_to_json_text)
    raise ValueError(f"unknown logical type {logical_type!r}")


def _is_null(value) -> bool:
    return value is None or (not isinstance(value, (str, bytes, dict, list)) and pd.isna(value))


def _to_bool(value):
    if _is_null(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _to_json_text(value):
    if _is_null(value):
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    try:
        json.loads(value)
    except (TypeError, ValueError):
        return None
    return value
