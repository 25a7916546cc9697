"""Check raw rows against a stream contract: coerce each column to its type, and say why a row
cannot be landed (a missing key, a value of the wrong type or beyond what the warehouse holds, a
time outside its source's life, a value staging could not cast) instead of dropping it."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tenantpulse.sources.contracts import (
    BIGINT,
    SCHEDULED,
    SCHEDULED_HORIZON,
    SYNC_TOLERANCE,
    VARCHAR,
    CastValue,
    Column,
    StreamContract,
)

_TRUE = {"true", "t", "1", "yes"}
_FALSE = {"false", "f", "0", "no"}
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
DECIMAL_LIMIT = 10**29  # decimal(38, 9) holds 29 digits before the point
_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*")  # what Postgres casts to bigint ('3.0' is not)
# A number both warehouses cast from text (no 'NaN', 'Infinity', hex or digit separators).
_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_JSON_NUL = re.compile(r"(?<!\\)(\\\\)*\\u0000")  # \u0000 itself, not an escaped backslash + u0000
_SECONDS_PER_YEAR = 365.2425 * 86400


@dataclass
class ValidatedRows:
    valid: pd.DataFrame  # typed contract columns + Airbyte columns, contract order
    rejected: pd.DataFrame  # the raw rows that failed, as read
    reasons: pd.Series  # one reason per rejected row, same index as `rejected`
    # Each raw row's sync time, NaT where unreadable or in the future: the watermark may move past
    # every other row, quarantined or not.
    synced: pd.Series
    in_future: pd.Series  # each raw row: is its sync time in the future (read again later)


class _Problems:
    """The reasons found so far for each raw row ('' for a row with none)."""

    def __init__(self, index: pd.Index):
        self.text = pd.Series("", index=index, dtype=object)

    def add(self, failed: pd.Series, column: str, values: pd.Series, why: str, show=None) -> None:
        """Add `column: <value> <why>` to each failed row; `show` renders a value (default: repr)."""
        if failed.any():
            shown = values[failed].map(show or (lambda v: repr(_plain(v))[:40]))
            self.text[failed] += f"{column}: " + shown + f" {why}; "


def validate_rows(
    contract: StreamContract,
    raw: pd.DataFrame,
    json_typed: Collection[str] = (),
    landed_at: dt.datetime | None = None,
) -> ValidatedRows:
    """Type every contract column of `raw` (a missing column becomes NULL) and split off rows with
    a NULL key, a value that does not convert, a time out of bounds or a value staging cannot
    cast. `json_typed` names columns the warehouse stores as JSON, whose values need no parsing to
    be known valid. `landed_at` (default: now) bounds `_airbyte_extracted_at`."""
    problems = _Problems(raw.index)
    typed = {}
    for column in contract.all_columns:
        if column.name not in raw.columns:
            typed[column.name] = pd.Series(None, index=raw.index, dtype=object)
            continue
        values = raw[column.name]
        if column.type == "json" and column.name in json_typed:
            # Raw files' JSON comes as Arrow-backed text and stays so (as varchar does); Postgres's
            # jsonb as parsed values.
            text = isinstance(values.dtype, pd.StringDtype)
            converted = values if text else values.astype(object).where(values.notna(), None)
        else:
            converted = _convert(values, column.type)
        failed = values.notna() & converted.isna()
        problems.add(failed, column.name, values, f"is not a {column.type}")
        typed[column.name] = converted
    frame = pd.DataFrame(typed, index=raw.index)

    synced = frame["_airbyte_extracted_at"]
    floor = pd.Timestamp(contract.floor, tz="UTC")
    in_future = synced > pd.Timestamp(landed_at or dt.datetime.now(dt.UTC)) + SYNC_TOLERANCE
    extracted = raw["_airbyte_extracted_at"]
    problems.add(synced < floor, "_airbyte_extracted_at", extracted, _before(contract))
    problems.add(in_future, "_airbyte_extracted_at", extracted, "is in the future")
    for column in contract.columns:
        if column.time and column.name in raw.columns:
            _check_time(contract, column, frame[column.name], raw[column.name], synced, problems)
    for rule in contract.casts:
        if rule.column in raw.columns:
            offenders = _uncastable(frame[rule.column], rule)
            why = _cast_reason(rule)
            problems.add(offenders.notna(), rule.label, offenders, why, show=_shown_scalar)
    for name in contract.required_columns:
        missing = frame[name].isna() & raw.get(name, pd.Series(None, index=raw.index)).isna()
        if missing.any():
            problems.text[missing] += f"{name}: missing (required); "
    bad = problems.text != ""
    any_bad = bad.any()  # almost never: then no row is copied
    return ValidatedRows(
        valid=(frame[~bad] if any_bad else frame).reset_index(drop=True),
        rejected=raw[bad] if any_bad else raw.iloc[:0],
        reasons=problems.text[bad].str.rstrip("; "),
        synced=synced.where(~in_future),
        in_future=in_future.fillna(False).astype(bool),
    )


def _before(contract: StreamContract) -> str:
    return f"is before {contract.floor.isoformat()}, when {contract.source} began"


def _check_time(
    contract: StreamContract,
    column: Column,
    values: pd.Series,
    raw_values: pd.Series,
    synced: pd.Series,
    problems: _Problems,
) -> None:
    """Flag a time column's (typed) values before the source began or later than their sync
    allows; a reason shows the raw value."""
    floor = pd.Timestamp(contract.floor, tz="UTC")
    margin = SCHEDULED_HORIZON if column.time == SCHEDULED else SYNC_TOLERANCE
    ceiling = synced + pd.Timedelta(margin).as_unit("s")  # keeps the times' unit (years to 294276)
    after = f"is more than {margin.days} day{'s' * (margin.days > 1)} after its sync"
    if column.type in ("bigint", "decimal"):  # Unix epoch seconds
        seconds = values.astype("float64")
        since_epoch = (ceiling - pd.Timestamp(0, tz="UTC").as_unit("s")).dt.total_seconds()
        for failed, why in (
            (seconds < floor.timestamp(), _before(contract)),
            (seconds > since_epoch, after),
        ):
            problems.add(failed, column.name, seconds, why, show=_epoch_shown)
        return
    if column.type == VARCHAR:  # a date as text, as staging's ga_date reads it
        moments = _text_dates(values)
        failed = values.notna() & moments.isna()
        problems.add(failed, column.name, raw_values, "is not a YYYYMMDD date")
        ceiling = ceiling.dt.floor("D")  # a report's day may be the sync's next day somewhere
    else:
        moments = pd.to_datetime(values, utc=True)
    problems.add(moments < floor, column.name, raw_values, _before(contract))
    problems.add(moments > ceiling, column.name, raw_values, after)


def _epoch_shown(seconds: float) -> str:
    return f"{seconds:.0f} (year {math.floor(1970 + seconds / _SECONDS_PER_YEAR)})"


def _text_dates(values: pd.Series) -> pd.Series:
    """'YYYYMMDD' (or with dashes, which staging drops) as UTC days; NaT otherwise."""
    digits = values.astype(object).map(lambda v: v.replace("-", "") if isinstance(v, str) else None)
    eight_digits = digits.where(digits.str.fullmatch(r"\d{8}", na=False))
    return pd.to_datetime(eight_digits, format="%Y%m%d", errors="coerce").dt.tz_localize("UTC")


def _convert(values: pd.Series, logical_type: str) -> pd.Series:
    if logical_type == "bigint":
        return _to_bigint(values)
    if logical_type == "decimal":
        numbers = _parsed_by_arrow(values, pa.float64())
        if numbers is None:
            numbers = pd.to_numeric(values.astype(object), errors="coerce").astype("float64")
        return numbers.where(np.isfinite(numbers) & (numbers.abs() < DECIMAL_LIMIT))
    if logical_type == "varchar":
        if isinstance(values.dtype, pd.StringDtype):
            # Kept as pandas' Arrow-backed text, not made a Python object a value: cheaper here
            # and in DuckDB's merge (docs/decisions.md, landing keeps raw files' text as Arrow).
            return values
        return values.astype(object).map(lambda v: None if _is_null(v) else str(v))
    if logical_type == "timestamptz":
        return _to_timestamps(values)
    if logical_type == "date":
        stamps = _to_timestamps(values)
        return stamps.map(lambda v: None if pd.isna(v) else v.date()).astype(object)
    if logical_type == "boolean":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean")
        return values.astype(object).map(_to_bool).astype("boolean")
    if logical_type == "json":
        return values.astype(object).map(_to_json_text)
    raise ValueError(f"unknown logical type {logical_type!r}")


def _to_bigint(values: pd.Series) -> pd.Series:
    """64-bit integers; anything else (fractions, text, values beyond 64 bits) is NULL."""
    if values.dtype.kind == "i" or isinstance(values.dtype, pd.Int64Dtype):
        return values.astype("Int64")
    if values.dtype.kind == "f":
        # -2**63 and 2**63 are exact floats; every whole float from the one to below the other fits.
        fits = np.isfinite(values) & (values == np.floor(values))
        fits &= (values >= -(2.0**63)) & (values < 2.0**63)
        return values.where(fits).astype("Int64")
    # Built from int64 and a mask: a list with None would pass through float64 and lose digits.
    numbers = [_integer(v) for v in values]
    data = np.array([0 if n is None else n for n in numbers], dtype=np.int64)
    mask = np.array([n is None for n in numbers], dtype=bool)
    return pd.Series(pd.arrays.IntegerArray(data, mask), index=values.index)


def _integer(value) -> int | None:
    """A whole number within 64 bits from a Python, numpy or text value; None otherwise."""
    if _is_null(value) or isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    else:
        try:
            exact = Decimal(value.strip() if isinstance(value, str) else value)
        except (InvalidOperation, TypeError, ValueError):
            return None
        if not exact.is_finite() or exact != exact.to_integral_value():
            return None
        number = int(exact)
    return number if BIGINT_MIN <= number <= BIGINT_MAX else None


def _to_timestamps(values: pd.Series) -> pd.Series:
    """UTC timestamps from datetimes or ISO 8601 text; anything else is NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    if isinstance(values.dtype, pd.StringDtype):  # text or NULL only: parsed as it is
        stamps = _parsed_by_arrow(values, pa.timestamp("us", "UTC"))
        if stamps is not None:
            return stamps.dt.tz_convert(dt.UTC)
        return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    text = values.astype(object).map(lambda v: v if isinstance(v, str) else None)
    return pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")


def _parsed_by_arrow(values: pd.Series, to: pa.DataType) -> pd.Series | None:
    """Arrow-backed text cast by Arrow, or None if a value does not parse or none is there (then
    pandas parses it as before). Where Arrow parses every value it gives what pandas does (numbers,
    ISO 8601 times with a zone; tests/test_landing.py) in a fraction of the time: this was
    a sixth of landing a first load, every raw file's sync times and decimals coming as text."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        return None
    if not values.notna().any():  # pandas gives all-NULL times another unit
        return None
    try:
        parsed = pc.cast(pa.array(values), to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pd.Series(parsed.to_pandas().array, index=values.index, name=values.name)


def _is_null(value) -> bool:
    return value is None or (not isinstance(value, (str, bytes, dict, list)) and pd.isna(value))


def _to_bool(value):
    if _is_null(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _to_json_text(value):
    """JSON text both warehouses store: no NaN or Infinity, no NUL character or unpaired surrogate
    in a string (Postgres's jsonb refuses them)."""
    if _is_null(value):
        return None
    if isinstance(value, (dict, list)):
        parsed, text = value, json.dumps(value, sort_keys=True, separators=(",", ":"))
    else:
        try:
            parsed, text = json.loads(value, parse_constant=_no_constant), value
        except (TypeError, ValueError):
            return None
    try:
        json.dumps(parsed, ensure_ascii=False).encode()
    except (UnicodeEncodeError, ValueError):
        return None
    return None if _JSON_NUL.search(text) else text


def _cast_reason(rule: CastValue) -> str:
    kind = "an integer" if rule.type == BIGINT else "a number"
    within = f"below 10^{len(str(rule.below)) - 1}" if rule.below else "that staging can cast"
    return f"is not {kind} {within}"


def _uncastable(values: pd.Series, rule: CastValue) -> pd.Series:
    """For each typed value, the first value in it staging could not cast by `rule` (None when
    every one casts); each distinct value is checked once."""
    offender = {}
    for value in values.dropna().unique():
        found = next((v for v in _cast_inputs(value, rule) if not _castable(v, rule)), None)
        if found is not None:
            offender[value] = found
    if not offender:  # almost always: nothing to look up row by row
        return pd.Series(None, index=values.index, dtype=object)
    found = [None if _is_null(v) else offender.get(v) for v in values]
    return pd.Series(found, index=values.index, dtype=object)


def _cast_inputs(value, rule: CastValue) -> list:
    """What staging casts of one value: the value, its regex match, or the values at a JSON path."""
    if rule.extract is not None:
        found = re.search(rule.extract, value)
        return [found.group(1)] if found else []
    if not rule.path:
        return [value]
    return _at_path(json.loads(value, parse_float=Decimal), rule.path)


def _at_path(document, path: tuple) -> list:
    """The non-null values at `path`, as either warehouse may read it: an integer step indexes a
    list or names an object's key ("0"), "*" takes every element of a list or object."""
    found = [document]
    for step in path:
        following = []
        for node in found:
            if isinstance(node, dict):
                following += list(node.values()) if step == "*" else [node.get(str(step))]
            elif isinstance(node, list) and step == "*":
                following += node
            elif isinstance(node, list) and isinstance(step, int) and step < len(node):
                following.append(node[step])
        found = [n for n in following if n is not None]
    return found


def _castable(value, rule: CastValue) -> bool:
    """Whether staging casts `value` (a JSON scalar or a column's value) to `rule.type`."""
    if isinstance(value, str):
        if not (_INTEGER_TEXT if rule.type == BIGINT else _NUMBER_TEXT).fullmatch(value):
            return False
        value = value.strip()
    elif isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer) if rule.type == BIGINT else (int, np.integer, Decimal, float)
    ):
        return False
    number = Decimal(int(value) if isinstance(value, np.integer) else value)
    if not number.is_finite():
        return False
    if rule.type == BIGINT and not BIGINT_MIN <= number <= BIGINT_MAX:
        return False
    return abs(number) < (rule.below or DECIMAL_LIMIT)


def _shown_scalar(value) -> str:
    """A JSON scalar as a reason shows it: text quoted, numbers as written."""
    return repr(value)[:40] if isinstance(value, str) else str(_plain(value))[:40]


def _plain(value):
    """A value as a reason shows it (numpy scalars as Python ones)."""
    return value.item() if isinstance(value, np.generic) else value
