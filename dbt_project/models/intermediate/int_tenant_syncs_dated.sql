-- Every UTC day with a successful sync of a tenant's data, and the day's newest one. A sync at
-- exactly 00:00 counts for the day it closes, the day before: it holds all of that day and
-- nothing of its own. A sync is known from the rows it landed (`_airbyte_extracted_at`, staging's
-- synced_at) and from ops.airbyte_sync_history, where a sync that found nothing new still leaves
-- its row. The history table appears with the first recorded sync: until then the landed rows are
-- the only record. In a run over the tenants that changed, only their syncs are read; every
-- other tenant's days are kept from the table (macros/run_tenants.sql, kept_outside_run).
{% set staged = [
    'stg_stripe__customers', 'stg_stripe__charges', 'stg_stripe__subscriptions',
    'stg_stripe__invoices', 'stg_stripe__refunds',
    'stg_github__repositories', 'stg_github__pull_requests', 'stg_github__commits',
    'stg_github__issues', 'stg_github__reviews',
    'stg_shopify__orders', 'stg_shopify__customers', 'stg_shopify__products',
    'stg_google_analytics__website_overview', 'stg_google_analytics__traffic_sources',
    'stg_google_analytics__devices', 'stg_google_analytics__conversions_report',
] %}
{% set sync_history = adapter.get_relation(
    database=target.database, schema='ops', identifier='airbyte_sync_history'
) if execute else none %}
{% set kept = kept_outside_run(['tenant_id', 'synced_date', 'last_synced_at']) %}
{% set rebuilt = in_run_tenants() if kept else 'true' %}
with

sync_times as (

    {% for model in staged %}
    select tenant_id, synced_at from {{ ref(model) }}
    union all
    {% endfor %}
    {% if sync_history is not none %}
    select tenant_id, finished_at from {{ sync_history }}
    where status = 'succeeded'
    union all
    {% endif %}
    -- Closes the chain of unions with no row.
    select cast(null as varchar), cast(null as timestamp with time zone)
    where 1 = 0

)

select
    tenant_id,
    {{ marts_day("synced_at - interval '1 microsecond'") }} as synced_date,
    max(synced_at) as last_synced_at

from sync_times
where tenant_id is not null and synced_at is not null and {{ rebuilt }}
group by tenant_id, {{ marts_day("synced_at - interval '1 microsecond'") }}
{% if kept %}
union all
select tenant_id, synced_date, last_synced_at
from {{ kept }}
where not ({{ rebuilt }})
{% endif %}
