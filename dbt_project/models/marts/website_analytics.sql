{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['tenant_id', 'date'],
        on_schema_change='append_new_columns',
        pre_hook="{{ marts_delete_rebuilt_rows('date') }}"
    )
}}

-- Google Analytics per tenant and UTC day, all of the tenant's properties together. Rates are
-- weighted by sessions (GA4 reports them per property and day; a plain mean of rates would
-- weigh a quiet property like a busy one).
with

overview_per_day as (

    select
        tenant_id,
        report_date as date,
        sum(sessions) as sessions,
        sum(total_users) as total_users,
        sum(new_users) as new_users,
        sum(page_views) as page_views,
        sum(bounce_rate * sessions) as bounced_sessions,
        sum(average_session_duration_seconds * sessions) as session_seconds

    from {{ ref('stg_google_analytics__website_overview') }}
    where {{ marts_in_window('report_date') }}
    group by 1, 2

),

conversions_per_day as (

    select tenant_id, report_date as date, sum(conversions) as conversions
    from {{ ref('stg_google_analytics__conversions_report') }}
    where {{ marts_in_window('report_date') }}
    group by 1, 2

),

tenant_days as (

    select tenant_id, date from overview_per_day
    union
    select tenant_id, date from conversions_per_day

)

select
    tenant_days.tenant_id,
    tenant_days.date,
    {{ marts_count('coalesce(overview_per_day.sessions, 0)') }} as sessions,
    {{ marts_count('coalesce(overview_per_day.total_users, 0)') }} as total_users,
    {{ marts_count('coalesce(overview_per_day.new_users, 0)') }} as new_users,
    {{ marts_count('coalesce(overview_per_day.page_views, 0)') }} as page_views,
    {{ marts_ratio('overview_per_day.bounced_sessions', 'overview_per_day.sessions') }} as bounce_rate,
    {{ marts_count('coalesce(conversions_per_day.conversions, 0)') }} as conversions,
    {{ marts_ratio('coalesce(conversions_per_day.conversions, 0)', 'overview_per_day.sessions') }}
        as conversion_rate,
    {{ marts_ratio('overview_per_day.session_seconds', 'overview_per_day.sessions', 4) }}
        as avg_session_duration_seconds

from tenant_days
left join overview_per_day
    on tenant_days.tenant_id = overview_per_day.tenant_id
    and tenant_days.date = overview_per_day.date
left join conversions_per_day
    on tenant_days.tenant_id = conversions_per_day.tenant_id
    and tenant_days.date = conversions_per_day.date
