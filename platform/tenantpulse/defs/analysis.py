"""The analysis as daily-partitioned assets over all tenants at once: a run over a range of days
trains the churn model once (on labels known by the range's first day) and analyses each day."""

import datetime as dt

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from tenantpulse.analysis.daily import analyse_day, normalise_history, train_churn_model
from tenantpulse.analysis.tables import ANALYSIS_SCHEMA, replace_days
from tenantpulse.defs.resources import WarehouseResource

HISTORY = AssetKey(["analytics", "tenant_daily_metrics"])
# asset name -> (tables it writes, assets it reads)
ANALYSIS_ASSETS = {
    "tenant_features": (("tenant_features",), [HISTORY]),
    "patterns": (("trends", "seasonality", "anomalies"), [HISTORY]),
    "health_scores": (("health_scores",), [HISTORY, AssetKey(["analysis", "patterns"])]),
    "churn_risk": (("churn_risk",), [AssetKey(["analysis", "tenant_features"])]),
    "recommendations": (
        ("recommendations",),
        [AssetKey(["analysis", name]) for name in ("patterns", "health_scores", "churn_risk")],
    ),
}


def build_analysis_assets(daily_partitions: DailyPartitionsDefinition):
    specs = [
        AssetSpec(
            AssetKey(["analysis", name]),
            deps=deps,
            group_name="analysis",
            description=f"Tables {', '.join(f'{ANALYSIS_SCHEMA}.{t}' for t in tables)}: one row set per tenant per day.",
        )
        for name, (tables, deps) in ANALYSIS_ASSETS.items()
    ]

    @multi_asset(
        name="analysis",
        specs=specs,
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
    )
    def analysis(context: AssetExecutionContext, warehouse: WarehouseResource):
        window = context.partition_time_window
        days = [
            (window.start + dt.timedelta(days=i)).date()
            for i in range((window.end - window.start).days)
        ]
        with warehouse.open().connect() as conn:
            history = normalise_history(
                conn.read_frame("select * from analytics.tenant_daily_metrics")
            )
        model = train_churn_model(history, known_until=days[0])
        context.log.info(
            f"churn model: {model.n_samples} samples, {model.n_tenants} tenants, "
            f"held-out ROC AUC {model.roc_auc}, fallback: {model.fallback_reason}"
        )
        results = [analyse_day(history, day, model) for day in days]
        with warehouse.open().connect() as conn:
            rows = {}
            for table in results[0].tables():
                frame = _concat([r.tables()[table] for r in results])
                rows[table] = replace_days(conn, ANALYSIS_SCHEMA, table, frame, days)
            workflow = _concat([r.workflow for r in results])
            replace_days(conn, "ops", "ai_workflow_analysis", workflow, days)
        for name, (tables, _) in ANALYSIS_ASSETS.items():
            metadata = {f"rows_{t}": rows[t] for t in tables} | {"days": len(days)}
            if name == "churn_risk":
                metadata |= {
                    "roc_auc_held_out_tenants": model.roc_auc,
                    "brier_score": model.brier,
                    "training_samples": model.n_samples,
                    "calibration": MetadataValue.json(model.calibration.to_dict(orient="records")),
                    "fallback_reason": model.fallback_reason or "",
                }
            yield MaterializeResult(asset_key=AssetKey(["analysis", name]), metadata=metadata)

    return analysis


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    non_empty = [f for f in frames if not f.empty]
    return pd.concat(non_empty, ignore_index=True) if non_empty else frames[0]
