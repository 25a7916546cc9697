with

source as (

    select * from {{ source('landing', 'google_analytics__website_overview') }}

),

renamed as (

    select
        tenant_id,
        property_id,
        {{ ga_date('"date"') }} as report_date,
        {{ ga_report_metrics() }}
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
