with

source as (

    select * from {{ source('landing', 'shopify__products') }}

),

renamed as (

    select
        tenant_id,
        id as product_id,
        title,
        status,
        product_type,
        vendor,
        coalesce({{ json_array_size('variants') }}, 0) as variant_count,
        created_at,
        updated_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
