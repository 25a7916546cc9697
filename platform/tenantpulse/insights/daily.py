"""The insights of a range of analysed days: every tenant's facts read per day, written by the
deterministic writer or the LLM (with its answer cache), grounded, and stored in
`analysis.insights`. The insights asset and the bench call it."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import openai
import pandas as pd

from tenantpulse.analysis.tables import ANALYSIS_SCHEMA, replace_days
from tenantpulse.config import LlmSettings
from tenantpulse.insights.compose import (
    DeterministicWriter,
    TenantInsights,
    Writer,
    WritingRequest,
    request_for,
    write_insights,
)
from tenantpulse.insights.llm import Cache, LlmWriter, Prices, input_hash
from tenantpulse.insights.store import (
    INSIGHTS_TABLE,
    facts_of_day,
    insights_frame,
    load_cache,
    save_cache,
    tenant_contexts,
)
from tenantpulse.tenants.registry import removed_tenant_ids
from tenantpulse.warehouse import Connection, Warehouse

PROGRESS_STEPS = 10  # progress lines per run


@dataclass(frozen=True)
class DaysWritten:
    days: list[dt.date]
    results: list[TenantInsights]
    frame: pd.DataFrame  # the analysis.insights rows stored for the days


def insight_requests(
    conn: Connection, days: list[dt.date], with_context: bool = False
) -> list[WritingRequest]:
    """One request per tenant analysed on each day, but the removed tenants; `with_context`: with
    the tenant text a prompt may quote (only an LLM reads it)."""
    removed = removed_tenant_ids(conn)
    requests = []
    for day in days:
        facts = [f for f in facts_of_day(conn, day) if f.tenant_id not in removed]
        contexts = tenant_contexts(conn, [f.tenant_id for f in facts], day) if with_context else {}
        requests += [request_for(f, contexts.get(f.tenant_id)) for f in facts]
    return requests


def llm_writer(
    client: openai.OpenAI,
    llm: LlmSettings,
    cache: Cache,
    on_error: Callable[[str, str], None] | None = None,
) -> LlmWriter:
    """The LLM writer with the settings' model, prices, timeout and retries."""
    client = client.with_options(timeout=llm.timeout_seconds, max_retries=llm.max_retries)
    prices = Prices(llm.input_price_per_mtok, llm.output_price_per_mtok)
    return LlmWriter(client, llm.model, prices, cache, on_error=on_error)


def write_days(
    warehouse: Warehouse,
    days: list[dt.date],
    llm: LlmSettings,
    client: openai.OpenAI | None = None,
    log: Callable[[str], None] = lambda _: None,
    warn: Callable[[str], None] = lambda _: None,
) -> DaysWritten:
    """Write, ground and store the insights of `days`: with the LLM when `llm.enabled` (`client`
    required; its cached answers are reused and the new ones saved), else the deterministic
    writer. `log` hears the progress; `warn`, each failed call and each dropped sentence."""
    if llm.enabled and client is None:
        raise ValueError("the LLM writer needs an OpenAI client")
    with warehouse.connect() as conn:
        requests = insight_requests(conn, days, with_context=llm.enabled)
        if llm.enabled:
            cache = load_cache(conn, [input_hash(llm.model, r) for r in requests])
    writer: Writer = DeterministicWriter()
    concurrency = 1
    if llm.enabled:

        def on_error(tenant: str, reason: str) -> None:
            warn(f"{tenant}: LLM call failed, deterministic sentences kept: {reason}")

        writer, concurrency = llm_writer(client, llm, cache, on_error), llm.concurrency
        log(
            f"writing {len(requests)} tenant-days with {llm.model} "
            f"({len(cache.entries)} cached, at most {concurrency} calls at a time)"
        )
    results = write_insights(requests, writer, concurrency, _progress(len(requests), log))
    for result in results:
        for dropped in result.dropped:
            warn(
                f"{result.tenant_id} {result.as_of}: dropped the sentence on {dropped.topic} "
                f"(failed the grounding check: {'; '.join(dropped.unmatched)}): {dropped.text!r}"
            )
    frame = insights_frame(results)
    with warehouse.connect() as conn:
        if not frame.empty:
            replace_days(conn, ANALYSIS_SCHEMA, INSIGHTS_TABLE, frame, days)
        if isinstance(writer, LlmWriter):
            save_cache(conn, writer.cache, llm.model)
    return DaysWritten(days, results, frame)


def _progress(total: int, log: Callable[[str], None]) -> Callable[[TenantInsights], None]:
    """A write_insights progress callback that logs every tenth of `total` (calls may come from
    several threads: the count is an atomic counter)."""
    step = max(1, total // PROGRESS_STEPS)
    written = itertools.count(1)

    def progress(_: TenantInsights) -> None:
        done = next(written)
        if done % step == 0 or done == total:
            log(f"insights: {done}/{total} tenant-days written")

    return progress
