with

source as (

    select * from {{ source('landing', 'shopify__customers') }}

),

renamed as (

    select
        tenant_id,
        id as customer_id,
        {{ normalize_email('email') }} as email,
        first_name,
        last_name,
        state,
        currency,
        orders_count,
        cast(total_spent as numeric(38, 4)) as total_spent,
        last_order_id,
        verified_email as is_verified_email,
        created_at,
        updated_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
