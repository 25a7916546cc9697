with

source as (

    select * from {{ source('landing', 'google_analytics__conversions_report') }}

),

renamed as (

    select
        tenant_id,
        property_id,
        {{ ga_date('"date"') }} as report_date,
        "eventName" as event_name,
        conversions,
        "totalUsers" as total_users,
        cast("totalRevenue" as numeric(38, 4)) as total_revenue,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
