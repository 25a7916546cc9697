"""The `tenants` dynamic partitions, one key per registered tenant id, and runs over ranges of them;
the days a run over daily partitions covers."""

import datetime as dt

from dagster import AssetExecutionContext, DynamicPartitionsDefinition

tenant_partitions = DynamicPartitionsDefinition(name="tenants")


def partition_ranges(ordered_keys: list[str], selected: list[str]) -> list[tuple[str, str]]:
    """Cover `selected` keys with as few contiguous (first, last) ranges of `ordered_keys` as
    possible: one run per range, so all tenants go in one run when all are selected."""
    chosen = set(selected)
    missing = chosen - set(ordered_keys)
    if missing:
        raise ValueError(f"no tenants partition for {sorted(missing)}: register the tenants first")
    ranges, start, previous = [], None, None
    for key in ordered_keys:
        if key in chosen:
            start = start or key
            previous = key
        elif start is not None:
            ranges.append((start, previous))
            start = None
    if start is not None:
        ranges.append((start, previous))
    return ranges


def partition_days(context: AssetExecutionContext) -> list[dt.date]:
    """The days of the daily partitions a run covers, in order (one run may cover many)."""
    window = context.partition_time_window
    return [
        (window.start + dt.timedelta(days=i)).date()
        for i in range((window.end - window.start).days)
    ]
