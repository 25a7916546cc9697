with

source as (

    select * from {{ source('landing', 'stripe__invoices') }}

),

renamed as (

    select
        tenant_id,
        id as invoice_id,
        customer as customer_id,
        subscription as subscription_id,
        status,
        currency,
        {{ minor_to_major('amount_due', 'currency') }} as amount_due,
        {{ minor_to_major('amount_paid', 'currency') }} as amount_paid,
        {{ minor_to_major('amount_remaining', 'currency') }} as amount_remaining,
        {{ minor_to_major('subtotal', 'currency') }} as subtotal,
        {{ minor_to_major('total', 'currency') }} as total,
        paid as is_paid,
        billing_reason,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('due_date') }} as due_at,
        {{ epoch_to_timestamp('period_start') }} as period_start,
        {{ epoch_to_timestamp('period_end') }} as period_end,
        {{ epoch_to_timestamp('updated') }} as updated_at,
        _airbyte_extracted_at as synced_at

    from source
    where not coalesce(is_deleted, false)

)

select * from renamed
