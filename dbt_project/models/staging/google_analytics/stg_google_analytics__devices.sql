with

source as (

    select * from {{ source('landing', 'google_analytics__devices') }}

),

renamed as (

    select
        tenant_id,
        property_id,
        {{ ga_date('"date"') }} as report_date,
        "deviceCategory" as device_category,
        "operatingSystem" as operating_system,
        browser,
        {{ ga_report_metrics() }}
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
