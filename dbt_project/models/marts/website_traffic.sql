{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['tenant_id', 'date', 'dimension', 'dimension_value'],
        on_schema_change='append_new_columns',
        pre_hook="{{ marts_delete_rebuilt_rows('date') }}"
    )
}}

-- Google Analytics traffic per tenant, UTC day and breakdown: by source / medium and by device
-- category. GA splits each breakdown separately, so one breakdown's sessions add up to the day's
-- overview only roughly.
with

traffic_sources as (

    select
        tenant_id,
        report_date as date,
        'source_medium' as dimension,
        coalesce(session_source, '(not set)') || ' / ' || coalesce(session_medium, '(not set)')
            as dimension_value,
        sessions,
        total_users,
        bounce_rate

    from {{ ref('stg_google_analytics__traffic_sources') }}
    where {{ marts_in_window('report_date') }}

),

devices as (

    select
        tenant_id,
        report_date as date,
        'device' as dimension,
        coalesce(lower(device_category), '(not set)') as dimension_value,
        sessions,
        total_users,
        bounce_rate

    from {{ ref('stg_google_analytics__devices') }}
    where {{ marts_in_window('report_date') }}

),

breakdowns as (

    select * from traffic_sources
    union all
    select * from devices

),

aggregated as (

    select
        tenant_id,
        date,
        dimension,
        dimension_value,
        sum(sessions) as sessions,
        sum(total_users) as total_users,
        sum(bounce_rate * sessions) as bounced_sessions

    from breakdowns
    group by 1, 2, 3, 4

)

select
    tenant_id,
    date,
    cast(dimension as varchar) as dimension,
    cast(dimension_value as varchar) as dimension_value,
    {{ marts_count('sessions') }} as sessions,
    {{ marts_count('total_users') }} as total_users,
    {{ marts_ratio('bounced_sessions', 'sessions') }} as bounce_rate

from aggregated
