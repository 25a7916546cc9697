with

source as (

    select * from {{ source('landing', 'google_analytics__traffic_sources') }}

),

renamed as (

    select
        tenant_id,
        property_id,
        {{ ga_date('"date"') }} as report_date,
        "sessionSource" as session_source,
        "sessionMedium" as session_medium,
        "totalUsers" as total_users,
        "newUsers" as new_users,
        sessions,
        cast("sessionsPerUser" as numeric(38, 9)) as sessions_per_user,
        cast("averageSessionDuration" as numeric(38, 9)) as average_session_duration_seconds,
        "screenPageViews" as page_views,
        cast("screenPageViewsPerSession" as numeric(38, 9)) as page_views_per_session,
        cast("bounceRate" as numeric(38, 9)) as bounce_rate,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
