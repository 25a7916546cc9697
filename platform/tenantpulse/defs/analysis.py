"""The analysis as daily-partitioned assets over all tenants at once: a run over a range of days
recomputes the tenant-days whose inputs changed and scores them with the saved churn model; the
model is its own asset, retrained by a weekly schedule (analysis.daily, analysis.model_store)."""

from collections.abc import Iterator
from dataclasses import replace

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
    multi_asset,
)

from tenantpulse.analysis.checks import CHECKS, check_analysis
from tenantpulse.analysis.daily import (
    MODEL_LABEL_LAG_DAYS,
    DaysAnalysed,
    analyse_days,
    retrain_churn_model,
)
from tenantpulse.analysis.model_store import MODEL_MAX_AGE_DAYS, MODEL_SCHEMA, MODEL_TABLE
from tenantpulse.analysis.tables import ANALYSIS_COLUMNS
from tenantpulse.defs.partitions import partition_days
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.defs.schemas import column_schema, table_schema
from tenantpulse.tenants.registry import list_tenants

HISTORY = AssetKey(["analytics", "tenant_daily_metrics"])
CHURN_MODEL = AssetKey(["analysis", "churn_model"])
CHURN_MODEL_JOB = "churn_model_job"
CHURN_MODEL_CRON = "0 23 * * 0"  # Sundays 23:00 UTC, clear of the daily flow at 00:30
# asset name -> (tables it writes, assets it reads)
ANALYSIS_ASSETS = {
    "tenant_features": (("tenant_features",), [HISTORY]),
    "patterns": (("trends", "seasonality", "anomalies"), [HISTORY]),
    "health_scores": (("health_scores",), [HISTORY, AssetKey(["analysis", "patterns"])]),
    "churn_risk": (("churn_risk",), [AssetKey(["analysis", "tenant_features"]), CHURN_MODEL]),
    "recommendations": (
        ("recommendations",),
        [AssetKey(["analysis", name]) for name in ("patterns", "health_scores", "churn_risk")],
    ),
}


# What each asset holds and how it is computed (docs/analysis.md has the parameters).
DESCRIPTIONS = {
    "tenant_features": "The churn model's inputs for each tenant as of each analysed day "
    "(`analysis.tenant_features`): 30-day revenue growth, MRR growth, failed-charge and "
    "cancellation rates, and 28-day relative Theil-Sen trends of revenue, new customers, PRs "
    "merged and sessions, from the rows of `analytics.tenant_daily_metrics` dated on or before "
    "the day; a missing rate gets a neutral value and a `*_missing` flag.",
    "patterns": "Trends, weekly seasonality and anomalies of each tenant's daily metrics as of "
    "each analysed day, from `analytics.tenant_daily_metrics` up to that day. "
    "`analysis.trends`: Theil-Sen slopes over 28 and 90 days, the same relative to the mean "
    "level, month-over-month growth and a direction. `analysis.seasonality`: the share of "
    "variance the day of the week explains over 56 days and a Kruskal-Wallis test of it (weekly "
    "from 0.3 with p below 0.01 and enough days and events), with the peak and trough days. "
    "`analysis.anomalies`: days of the last 90 whose robust z-score against the median of the "
    "days around them is 3.5 or more.",
    "health_scores": "Each tenant's 0-100 health score per analysed day "
    "(`analysis.health_scores`): the weighted mean of the components the tenant has data for "
    "(revenue 0.35, payments 0.2, engineering 0.2, web 0.15, data freshness 0.1, weights "
    "renormalised), each a piecewise-linear score of 30-day metrics and of the trends in "
    "analysis/patterns; capped at 40 when 20% or more of the last 30 days' charges failed. The "
    "metrics behind the score are in its row.",
    "churn_risk": "Each tenant's probability of churning in the next 30 days, per analysed day "
    "(`analysis.churn_risk`): the saved churn model (analysis/churn_model) over "
    "analysis/tenant_features; a range of days starting before the labels the saved model "
    "learned from (a backfill) gets a model of its own, trained on the labels known by its first "
    "day. Probabilities are clipped to 0.01..0.99. Bands: low below 0.3, high from 0.6; "
    "`unknown`, with the reason, under 45 days of history, without a revenue source or with "
    "stale data. The materialization's metadata says what the model was trained on and its "
    "held-out ROC AUC and Brier score on the real tenants (none when too few) and on all "
    "tenants, synthetic ones included.",
    "recommendations": "Prioritised recommendations per tenant and analysed day "
    "(`analysis.recommendations`): rules over the patterns, health score and churn risk (slow "
    "PR merges, failing payments with falling revenue, high churn risk, a recent revenue "
    "anomaly, weekly revenue seasonality, a high bounce rate), each with the evidence (metric = "
    "value) it fired on; the priority and action come from the rule, never from a model.",
}
PARTITIONS_NOTE = (
    " Daily partitions: a run analyses a range of days for every tenant at once, recomputing "
    "only the tenant-days whose inputs changed (`ops.analysed_inputs`: a hash of the "
    "tenant's rows up to the day, the model and the code) and every tenant on a day not analysed "
    "before; the flow analyses the days around the newest sync, so earlier days stay missing "
    "until backfilled."
)
CHURN_MODEL_DESCRIPTION = (
    f"The churn model the daily analysis scores with (`{MODEL_SCHEMA}.{MODEL_TABLE}`, the newest "
    "row): a class-balanced logistic regression (scikit-learn) over the tenant features, trained "
    f"on the labels known {MODEL_LABEL_LAG_DAYS} days before the newest history row, on the "
    "tenants' own history plus 60 SYNTHETIC tenants until 50 real tenants, 10 of them churned, "
    "have labels. Retrained by `churn_model_schedule` (Sundays 23:00 UTC); a daily analysis "
    f"trains one itself only when there is none or the saved one is older than "
    f"{MODEL_MAX_AGE_DAYS} days. Materialize this asset to retrain now. The metadata says what "
    "the model was trained on and its held-out ROC AUC and Brier score on the real tenants (none "
    "when too few) and on all tenants, synthetic ones included."
)
# The warehouse's kind (duckdb, postgres) is added by definitions.py.
KINDS = {
    "tenant_features": {"pandas", "numpy"},
    "patterns": {"pandas", "numpy"},
    "health_scores": {"pandas"},
    "churn_risk": {"pandas", "scikitlearn"},
    "recommendations": {"pandas"},
}


def analysis_schema(tables: tuple[str, ...]):
    """The column schema of an asset's tables (each column named `<table>.<column>` when the
    asset writes several)."""
    if len(tables) == 1:
        return table_schema(ANALYSIS_COLUMNS[tables[0]])
    return table_schema(
        [
            replace(column, name=f"{table}.{column.name}")
            for table in tables
            for column in ANALYSIS_COLUMNS[table]
        ]
    )


def _check_results(warehouse: WarehouseResource, analysed: DaysAnalysed) -> Iterator:
    """The checks of analysis.checks on the frames the run stored."""
    with warehouse.open().connect() as conn:
        active = [t.tenant_id for t in list_tenants(conn)]
    for outcome in check_analysis(analysed.analysed.tables(), active):
        yield AssetCheckResult(
            asset_key=AssetKey(["analysis", outcome.asset]),
            check_name=outcome.name,
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "failures": outcome.failures,
                "examples": MetadataValue.md(
                    "\n".join(f"- {e}" for e in outcome.examples) or "none"
                ),
            },
        )


def build_analysis_assets(daily_partitions: DailyPartitionsDefinition):
    specs = [
        AssetSpec(
            AssetKey(["analysis", name]),
            deps=deps,
            group_name="analysis",
            description=DESCRIPTIONS[name] + PARTITIONS_NOTE,
            kinds=KINDS[name],
            metadata=column_schema(analysis_schema(tables)),
        )
        for name, (tables, deps) in ANALYSIS_ASSETS.items()
    ]

    @multi_asset(
        name="analysis",
        specs=specs,
        check_specs=[
            AssetCheckSpec(check, asset=AssetKey(["analysis", name]), description=description)
            for name, checks in CHECKS.items()
            for check, description in checks
        ],
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def analysis(context: AssetExecutionContext, warehouse: WarehouseResource):
        analysed = analyse_days(warehouse.open(), partition_days(context))
        model, days = analysed.model, analysed.days
        context.log.info(
            f"{analysed.tenant_days_analysed} tenant-days analysed, "
            f"{analysed.tenant_days_unchanged} unchanged (kept); churn model: "
            f"{analysed.model_source}, trained on {model.trained_on}; {model.real_evaluation}; "
            f"fallback: {model.fallback_reason}"
        )
        counts = {
            "days": len(days),
            "tenant_days_analysed": analysed.tenant_days_analysed,
            "tenant_days_unchanged": analysed.tenant_days_unchanged,
            "history_rows_read": analysed.history_rows,
        }
        for name, (tables, _) in ANALYSIS_ASSETS.items():
            metadata = {f"rows_{t}": analysed.rows_written[t] for t in tables} | counts
            if name == "churn_risk":
                metadata |= {"churn_model": analysed.model_source} | model.metadata()
            yield MaterializeResult(asset_key=AssetKey(["analysis", name]), metadata=metadata)
        yield from _check_results(warehouse, analysed)

    return analysis


def build_churn_model_defs():
    """(the churn_model asset, its job, its weekly schedule)."""

    @asset(
        key=CHURN_MODEL,
        deps=[HISTORY],
        group_name="analysis",
        description=CHURN_MODEL_DESCRIPTION,
        kinds={"pandas", "scikitlearn"},
    )
    def churn_model(context: AssetExecutionContext, warehouse: WarehouseResource):
        saved = retrain_churn_model(warehouse.open())
        context.log.info(f"churn model {saved.model_id} trained on {saved.model.trained_on}")
        return MaterializeResult(
            metadata={"model_id": saved.model_id, "known_until": saved.known_until.isoformat()}
            | saved.model.metadata()
        )

    job = define_asset_job(
        CHURN_MODEL_JOB,
        selection=[CHURN_MODEL],
        description="Retrain the churn model the daily analysis scores with.",
    )
    schedule = ScheduleDefinition(
        name="churn_model_schedule",
        job=job,
        cron_schedule=CHURN_MODEL_CRON,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Each week (Sundays 23:00 UTC), retrain the churn model on the history so far.",
    )
    return churn_model, job, schedule
