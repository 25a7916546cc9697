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
        {{ ga_report_metrics() }}
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
