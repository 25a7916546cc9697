"""The insights asset: each tenant's analysis of a day written as strengths, improvements and
recommendation wording, grounded in its facts (insights/), daily partitioned like the analysis."""

import datetime as dt
import itertools

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from tenantpulse.analysis.tables import ANALYSIS_SCHEMA, replace_days
from tenantpulse.config import LlmSettings
from tenantpulse.insights.compose import DeterministicWriter, request_for, write_insights
from tenantpulse.insights.llm import LlmWriter, Prices, input_hash
from tenantpulse.insights.store import (
    INSIGHTS_TABLE,
    facts_of_day,
    insights_frame,
    load_cache,
    save_cache,
    tenant_contexts,
)

ANALYSIS_INPUTS = [
    AssetKey(["analysis", name])
    for name in ("patterns", "health_scores", "churn_risk", "recommendations")
]


def build_insights_asset(daily_partitions: DailyPartitionsDefinition, llm: LlmSettings):
    """With `llm.enabled` the asset needs the `openai` resource (dagster-openai's)."""

    @asset(
        key=AssetKey(["analysis", INSIGHTS_TABLE]),
        deps=ANALYSIS_INPUTS,
        group_name="insights",
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        required_resource_keys={"warehouse", "openai"} if llm.enabled else {"warehouse"},
        description=(
            f"Table {ANALYSIS_SCHEMA}.{INSIGHTS_TABLE}: grounded strengths, improvements and "
            "recommendation wording per tenant per day, and which writer wrote them."
        ),
    )
    def insights(context: AssetExecutionContext) -> MaterializeResult:
        window = context.partition_time_window
        days = [
            (window.start + dt.timedelta(days=i)).date()
            for i in range((window.end - window.start).days)
        ]
        warehouse = context.resources.warehouse.open()
        with warehouse.connect() as conn:
            requests = []
            for day in days:
                facts = facts_of_day(conn, day)
                contexts = (
                    tenant_contexts(conn, [f.tenant_id for f in facts], day) if llm.enabled else {}
                )
                requests += [request_for(f, contexts.get(f.tenant_id)) for f in facts]
            writer, concurrency = DeterministicWriter(), 1
            if llm.enabled:
                cache = load_cache(conn, [input_hash(llm.model, r) for r in requests])
        if llm.enabled:
            writer, concurrency = _llm_writer(context, llm, cache), llm.concurrency
            context.log.info(
                f"writing {len(requests)} tenant-days with {llm.model} "
                f"({len(cache.entries)} cached, at most {concurrency} calls at a time)"
            )
        step = max(1, len(requests) // 10)
        written = itertools.count(1)

        def progress(_):
            done = next(written)
            if done % step == 0 or done == len(requests):
                context.log.info(f"insights: {done}/{len(requests)} tenant-days written")

        results = write_insights(requests, writer, concurrency, progress)
        for result in results:
            for dropped in result.dropped:
                context.log.warning(
                    f"{result.tenant_id} {result.as_of}: dropped the sentence on {dropped.topic} "
                    f"(not in its facts: {', '.join(dropped.unmatched)}): {dropped.text!r}"
                )
        frame = insights_frame(results)
        with warehouse.connect() as conn:
            if not frame.empty:
                replace_days(conn, ANALYSIS_SCHEMA, INSIGHTS_TABLE, frame, days)
            if llm.enabled:
                save_cache(conn, writer.cache, llm.model)
        return MaterializeResult(metadata=_metadata(frame, days))

    return insights


def _llm_writer(context: AssetExecutionContext, llm: LlmSettings, cache) -> LlmWriter:
    # The resource makes the client (key, base_url); retries and timeout are ours to set.
    with context.resources.openai.get_client(context) as client:
        client = client.with_options(timeout=llm.timeout_seconds, max_retries=llm.max_retries)
    return LlmWriter(
        client,
        llm.model,
        Prices(llm.input_price_per_mtok, llm.output_price_per_mtok),
        cache,
        on_error=lambda tenant, reason: context.log.warning(
            f"{tenant}: LLM call failed, deterministic sentences kept: {reason}"
        ),
    )


def _metadata(frame: pd.DataFrame, days: list[dt.date]) -> dict:
    if frame.empty:
        return {"days": len(days), "tenant_days": 0}
    return {
        "days": len(days),
        "tenant_days": len(frame),
        "written_by_llm": int((frame["generated_by"] != "deterministic").sum()),
        "llm_failures": int(frame["llm_error"].notna().sum()),
        "cache_hits": int(frame["from_cache"].sum()),
        "sentences_checked": int(frame["sentences_checked"].sum()),
        "sentences_dropped": int(frame["sentences_dropped"].sum()),
        "prompt_tokens": int(frame["prompt_tokens"].sum()),
        "completion_tokens": int(frame["completion_tokens"].sum()),
        "cost_usd": round(float(frame["cost_usd"].sum()), 6),
    }
