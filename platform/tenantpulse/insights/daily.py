"""The insights of a range of analysed days: each tenant's facts read per day, written by the
deterministic writer or the LLM (with its answer cache), grounded, and stored in
`analysis.insights`. A tenant-day whose stored insights were written from the same analysis
(its input hash in ops.analysed_inputs) by the same writer is not written again: no LLM call,
no new row. The insights asset and the bench call it."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from tenantpulse.analysis.tables import ANALYSIS_SCHEMA, INPUTS_SCHEMA, replace_tenant_days
from tenantpulse.config import LlmSettings
from tenantpulse.insights.compose import (
    DETERMINISTIC,
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
    WRITTEN_TABLE,
    facts_of_day,
    insight_keys,
    insights_frame,
    load_cache,
    save_cache,
    tenant_contexts,
    written_frame,
    written_from_key,
)
from tenantpulse.tenants.registry import removed_tenant_ids
from tenantpulse.warehouse import Connection, Warehouse

if TYPE_CHECKING:  # imported with the client, when the LLM writes
    import openai

PROGRESS_STEPS = 10  # progress lines per run


@dataclass(frozen=True)
class DaysWritten:
    days: list[dt.date]
    results: list[TenantInsights]
    frame: pd.DataFrame  # the analysis.insights rows this run stored for the days
    tenant_days_unchanged: int = 0  # stored insights still current: kept, not written again


@dataclass(frozen=True)
class InsightsPlan:
    """Per day: the tenants to write (with what their insights are written from), and the
    stored rows to replace (None: the whole day)."""

    to_write: dict[dt.date, dict[str, str | None]]
    replaced: dict[dt.date, set[str] | None]
    unchanged: int


def plan_insights(conn: Connection, days: list[dt.date], writer: str) -> InsightsPlan:
    """Which tenant-days need insights written: those analysed whose stored insights were not
    written from the same analysis by the same `writer`; rows of tenants no longer analysed (or
    removed) go."""
    removed = removed_tenant_ids(conn)
    to_write, replaced, unchanged = {}, {}, 0
    for day in days:
        analysed, written = insight_keys(conn, day)
        keys = {
            tenant: written_from_key(input_hash, writer)
            for tenant, input_hash in analysed.items()
            if tenant not in removed
        }
        todo = {t: k for t, k in keys.items() if k is None or written.get(t) != k}
        gone = set(written) - set(keys)
        unchanged += len(keys) - len(todo)
        if todo or gone:
            to_write[day] = todo
            replaced[day] = None if set(written) <= set(todo) | gone else set(todo) | gone
    return InsightsPlan(to_write, replaced, unchanged)


def insight_requests(
    conn: Connection,
    days: list[dt.date],
    with_context: bool = False,
    tenants_by_day: dict[dt.date, Collection[str]] | None = None,
) -> list[WritingRequest]:
    """One request per tenant analysed on each day (or per tenant of `tenants_by_day`), but the
    removed tenants; `with_context`: with the tenant text a prompt may quote (only an LLM reads
    it)."""
    removed = removed_tenant_ids(conn)
    requests = []
    for day in days:
        chosen = None if tenants_by_day is None else tenants_by_day.get(day, ())
        if chosen is not None and not chosen:
            continue
        facts = [f for f in facts_of_day(conn, day, chosen) if f.tenant_id not in removed]
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
        plan = plan_insights(conn, days, llm.model if llm.enabled else DETERMINISTIC)
        requests = insight_requests(conn, days, llm.enabled, plan.to_write)
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
    written_from = {(t, day): key for day, keys in plan.to_write.items() for t, key in keys.items()}
    frame = insights_frame(results)
    with warehouse.connect() as conn:
        if plan.replaced and (
            not frame.empty or conn.table_exists(ANALYSIS_SCHEMA, INSIGHTS_TABLE)
        ):
            replace_tenant_days(conn, ANALYSIS_SCHEMA, INSIGHTS_TABLE, frame, plan.replaced)
            written = written_frame(results, written_from)
            replace_tenant_days(conn, INPUTS_SCHEMA, WRITTEN_TABLE, written, plan.replaced)
        if isinstance(writer, LlmWriter):
            save_cache(conn, writer.cache, llm.model)
    return DaysWritten(days, results, frame, plan.unchanged)


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
