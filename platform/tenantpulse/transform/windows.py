"""The daily window a dbt run rebuilds, as dbt `--vars`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

# A window that reaches the newest partition stays open: rows dated after it (a source's clock
# ahead of ours, or simulated days past today) are built with the newest day, not left out.
OPEN_END = dt.date(9999, 12, 31)


def window_vars(
    start: dt.date | dt.datetime,
    end: dt.date | dt.datetime,
    reaches_newest: bool = False,
    history_tenants: Sequence[str] = (),
    recent_from: dt.date | None = None,
) -> str:
    """`--vars` for the incremental models: rebuild dates in [start_date, end_date); with
    `history_tenants`, every other tenant's dates only from `recent_from` on."""
    start_day = start.date() if isinstance(start, dt.datetime) else start
    end_day = end.date() if isinstance(end, dt.datetime) else end
    if end_day <= start_day:
        raise ValueError(f"empty dbt window: end {end_day} is not after start {start_day}")
    if reaches_newest:
        end_day = OPEN_END
    window = {"start_date": start_day.isoformat(), "end_date": end_day.isoformat()}
    if history_tenants:
        if recent_from is None:
            raise ValueError("a window with history tenants needs the day the others start from")
        window |= {"history_tenants": list(history_tenants), "recent_from": recent_from.isoformat()}
    return json.dumps(window)
