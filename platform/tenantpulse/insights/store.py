"""Where insights come from and go: the analysis tables of one day in, `analysis.insights` out
(one row per tenant per day), the LLM answer cache in `ops.llm_cache`, and the tenant text a
prompt may quote (display name, recent PR titles)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping

import pandas as pd

from tenantpulse.analysis.document import ANALYSIS_TABLES
from tenantpulse.analysis.tables import (
    ANALYSIS_SCHEMA,
    INPUTS_SCHEMA,
    INPUTS_TABLE,
    OutputColumn,
    read_days,
)
from tenantpulse.insights.compose import TenantContext, TenantInsights
from tenantpulse.insights.facts import TenantFacts, tenant_facts
from tenantpulse.insights.llm import MAX_PR_TITLES, PROMPT_VERSION, Cache
from tenantpulse.warehouse import Connection

INSIGHTS_TABLE = "insights"
WRITTEN_TABLE = "insights_written"  # ops.insights_written: what each row was written from
CACHE_BATCH = 500  # input hashes per lookup query


def facts_of_day(
    conn: Connection, as_of: dt.date, tenant_ids: Collection[str] | None = None
) -> list[TenantFacts]:
    """The facts of every tenant analysed on `as_of` (or of those of `tenant_ids`; none when the
    day is not analysed)."""
    tables = {name: read_days(conn, name, None, as_of) for name in ANALYSIS_TABLES}
    if tables["health_scores"].empty:
        return []
    if tenant_ids is not None:
        chosen = set(tenant_ids)
        tables = {
            name: frame[frame["tenant_id"].isin(chosen)] if not frame.empty else frame
            for name, frame in tables.items()
        }
    by_tenant: dict[str, dict[str, list[dict]]] = {name: {} for name in ANALYSIS_TABLES}
    for name, frame in tables.items():
        for row in frame.to_dict(orient="records"):
            by_tenant[name].setdefault(row["tenant_id"], []).append(row)
    return [
        tenant_facts(
            tenant_id, as_of, {name: by_tenant[name].get(tenant_id, []) for name in ANALYSIS_TABLES}
        )
        for tenant_id in sorted(by_tenant["health_scores"])
    ]


def tenant_contexts(
    conn: Connection, tenant_ids: list[str], as_of: dt.date
) -> dict[str, TenantContext]:
    """Display names and the newest pull request titles opened up to `as_of`."""
    names = dict(
        conn.fetch_all("select tenant_id, name from ops.tenants")
        if conn.table_exists("ops", "tenants")
        else []
    )
    titles: dict[str, list[str]] = {}
    if conn.table_exists("staging", "stg_github__pull_requests"):
        rows = conn.fetch_all(
            "select tenant_id, title from ("
            " select tenant_id, title, row_number() over ("
            "  partition by tenant_id order by created_at desc, pull_request_id desc) as newest"
            " from staging.stg_github__pull_requests"
            " where created_at < %s and title is not null"
            ") ranked where newest <= %s order by tenant_id, newest",
            (as_of + dt.timedelta(days=1), MAX_PR_TITLES),
        )
        for tenant_id, title in rows:
            titles.setdefault(tenant_id, []).append(title)
    return {t: TenantContext(names.get(t) or t, tuple(titles.get(t, ()))) for t in tenant_ids}


def ensure_cache(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.llm_cache ("
        " input_hash varchar primary key,"
        " prompt_version varchar not null,"
        " model varchar not null,"
        " answer varchar not null,"
        " created_at timestamp not null)"
    )


def load_cache(conn: Connection, keys: list[str]) -> Cache:
    ensure_cache(conn)
    entries = {}
    for start in range(0, len(keys), CACHE_BATCH):
        batch = keys[start : start + CACHE_BATCH]
        placeholders = ", ".join(["%s"] * len(batch))
        for key, answer in conn.fetch_all(
            f"select input_hash, answer from ops.llm_cache where input_hash in ({placeholders})",
            batch,
        ):
            entries[key] = json.loads(answer)
    return Cache(entries)


def save_cache(conn: Connection, cache: Cache, model: str) -> int:
    """Store the answers `cache` received in this run; returns how many."""
    ensure_cache(conn)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for key, answer in cache.new.items():
        conn.execute("delete from ops.llm_cache where input_hash = %s", (key,))
        conn.execute(
            "insert into ops.llm_cache (input_hash, prompt_version, model, answer, created_at)"
            " values (%s, %s, %s, %s, %s)",
            (key, PROMPT_VERSION, model, json.dumps(answer), now),
        )
    return len(cache.new)


def insights_frame(results: list[TenantInsights]) -> pd.DataFrame:
    """One `analysis.insights` row per tenant and day; lists are JSON text."""
    rows = [
        {
            "tenant_id": r.tenant_id,
            "as_of": r.as_of,
            "strengths": json.dumps(r.strengths),
            "improvements": json.dumps(r.improvements),
            "recommendation_impacts": json.dumps(r.recommendation_impacts),
            "generated_by": r.generated_by,
            "prompt_version": PROMPT_VERSION,
            "input_hash": r.written.input_hash,
            "llm_error": r.written.error,
            "from_cache": r.written.from_cache,
            "sentences_checked": r.sentences_checked,
            "sentences_dropped": len(r.dropped),
            "dropped": json.dumps([d.__dict__ for d in r.dropped]),
            "fallback_topics": json.dumps(r.fallback_topics),
            "prompt_tokens": r.written.prompt_tokens,
            "completion_tokens": r.written.completion_tokens,
            "cost_usd": r.written.cost_usd,
        }
        for r in results
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # Typed columns even where every value is missing, so the table's schema never depends on a day.
    frame["input_hash"] = frame["input_hash"].astype("string")
    frame["llm_error"] = frame["llm_error"].astype("string")
    return frame


def written_frame(
    results: list[TenantInsights], written_from: Mapping[tuple[str, dt.date], str | None]
) -> pd.DataFrame:
    """`ops.insights_written` rows: what each tenant-day's insights were written from. A failed
    LLM call is retried by the next run: its row is written from nothing."""
    return pd.DataFrame(
        {
            "tenant_id": pd.Series([r.tenant_id for r in results], dtype="string"),
            "as_of": [r.as_of for r in results],
            "written_from": pd.Series(
                [
                    None if r.written.error else written_from.get((r.tenant_id, r.as_of))
                    for r in results
                ],
                dtype="string",
            ),
        }
    )


def written_from_key(input_hash: str | None, writer: str) -> str | None:
    """What a tenant-day's insights are written from: the hash of its analysed inputs
    (ops.analysed_inputs) and the writer (deterministic or the LLM's model). None when the
    analysis has no input hash (stored by other means): the insights are then always written."""
    return f"{input_hash}:{writer}" if input_hash else None


def insight_keys(
    conn: Connection, as_of: dt.date
) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(tenant -> input hash of its analysis of the day, for the tenants analysed that day;
    tenant -> written_from of its stored insights of the day)."""
    analysed: dict[str, str | None] = {}
    if conn.table_exists(ANALYSIS_SCHEMA, "health_scores"):
        analysed = dict.fromkeys(
            t
            for (t,) in conn.fetch_all(
                "select tenant_id from analysis.health_scores where as_of = %s", (as_of,)
            )
        )
    if conn.table_exists(INPUTS_SCHEMA, INPUTS_TABLE):
        for tenant, input_hash in conn.fetch_all(
            "select tenant_id, input_hash from ops.analysed_inputs where as_of = %s",
            (as_of,),
        ):
            if tenant in analysed:
                analysed[tenant] = input_hash
    written: dict[str, str | None] = {}
    if conn.table_exists(INPUTS_SCHEMA, WRITTEN_TABLE):
        written = dict(
            conn.fetch_all(
                "select tenant_id, written_from from ops.insights_written where as_of = %s",
                (as_of,),
            )
        )
    return analysed, written


# The columns insights_frame writes, in order: the insights asset's column schema in the UI.
INSIGHTS_COLUMNS: tuple[OutputColumn, ...] = tuple(
    OutputColumn(*column)
    for column in (
        ("tenant_id", "varchar", "The tenant (ops.tenants.tenant_id)."),
        ("as_of", "date", "The analysed day the insights are written from."),
        ("strengths", "varchar", "JSON list of sentences on what goes well."),
        ("improvements", "varchar", "JSON list of sentences on what to improve."),
        ("recommendation_impacts", "varchar", "JSON: recommendation rule -> its written impact."),
        ("generated_by", "varchar", "The LLM's model name, or deterministic (the templates)."),
        ("prompt_version", "varchar", "The version of the prompt the LLM was given."),
        ("input_hash", "varchar", "Hash of the model and its input: the answer cache's key."),
        ("llm_error", "varchar", "Why the LLM's answer was not used (templates kept)."),
        ("from_cache", "boolean", "The LLM's answer came from the cache (no call)."),
        ("sentences_checked", "bigint", "Written sentences checked against the tenant's facts."),
        ("sentences_dropped", "bigint", "Sentences that failed the grounding check: dropped."),
        ("dropped", "varchar", "JSON list of the dropped sentences and what did not match."),
        ("fallback_topics", "varchar", "JSON list of topics that kept the template's sentence."),
        ("prompt_tokens", "bigint", "Prompt tokens of the LLM call (0 without one)."),
        ("completion_tokens", "bigint", "Completion tokens of the LLM call."),
        ("cost_usd", "decimal", "Cost of the call at the configured prices, US dollars."),
    )
)
