"""The insights asset: each tenant's analysis of a day written as strengths, improvements and
recommendation wording, grounded in its facts (insights/), daily partitioned like the analysis."""

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from tenantpulse.analysis.tables import ANALYSIS_SCHEMA
from tenantpulse.config import LlmSettings
from tenantpulse.defs.partitions import partition_days
from tenantpulse.defs.schemas import column_schema, table_schema
from tenantpulse.insights.daily import write_days
from tenantpulse.insights.store import INSIGHTS_COLUMNS, INSIGHTS_TABLE

if TYPE_CHECKING:  # imported with the client, when the LLM writes (definitions.py)
    import openai

ANALYSIS_INPUTS = [
    AssetKey(["analysis", name])
    for name in ("patterns", "health_scores", "churn_risk", "recommendations")
]


def build_insights_asset(daily_partitions: DailyPartitionsDefinition, llm: LlmSettings):
    """With `llm.enabled` the asset needs the `openai` resource (dagster-openai's)."""
    writer = f"the LLM {llm.model} (dagster-openai, answers cached)" if llm.enabled else "templates"

    @asset(
        key=AssetKey(["analysis", INSIGHTS_TABLE]),
        deps=ANALYSIS_INPUTS,
        group_name="insights",
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        required_resource_keys={"warehouse", "openai"} if llm.enabled else {"warehouse"},
        description=(
            f"Table {ANALYSIS_SCHEMA}.{INSIGHTS_TABLE}: grounded strengths, improvements and "
            "recommendation wording per tenant per day, and which writer wrote them. Written from "
            "each tenant's facts of the day (health, churn risk, trends, anomalies, "
            f"recommendations) by {writer}; every number in a sentence must be one of the "
            "tenant's facts, or the sentence is dropped and the template's kept. A tenant-day "
            "whose analysis (ops.analysed_inputs) and writer are those its stored row was "
            "written from is not written again."
        ),
        # The warehouse's kind (duckdb, postgres) is added by definitions.py.
        kinds={"python", "openai"} if llm.enabled else {"python"},
        metadata=column_schema(table_schema(INSIGHTS_COLUMNS)),
    )
    def insights(context: AssetExecutionContext) -> MaterializeResult:
        written = write_days(
            context.resources.warehouse.open(),
            partition_days(context),
            llm,
            _openai_client(context) if llm.enabled else None,
            log=context.log.info,
            warn=context.log.warning,
        )
        return MaterializeResult(
            metadata=_metadata(written.frame, written.days)
            | {"tenant_days_unchanged": written.tenant_days_unchanged}
        )

    return insights


def _openai_client(context: AssetExecutionContext) -> "openai.OpenAI":
    # The resource makes the client (key, base_url); the timeout and retries are the settings'.
    with context.resources.openai.get_client(context) as client:
        return client


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
