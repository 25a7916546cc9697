with

source as (

    select * from {{ source('landing', 'shopify__orders') }}

),

renamed as (

    select
        tenant_id,
        id as order_id,
        name as order_name,
        order_number,
        coalesce(customer_id, cast({{ json_text('customer', ['id']) }} as bigint)) as customer_id,
        {{ normalize_email('email') }} as email,
        currency,
        -- Shopify sends major units already: cast only.
        cast(total_price as numeric(38, 4)) as total_price,
        cast(subtotal_price as numeric(38, 4)) as subtotal_price,
        cast(total_tax as numeric(38, 4)) as total_tax,
        cast(total_discounts as numeric(38, 4)) as total_discounts,
        {{ shopify_refunded_amount('refunds') }} as refunded_amount,
        financial_status,
        fulfillment_status,
        cancelled_at is not null as is_cancelled,
        cancelled_at,
        cancel_reason,
        coalesce(test, false) as is_test,
        source_name,
        created_at,
        processed_at,
        updated_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
