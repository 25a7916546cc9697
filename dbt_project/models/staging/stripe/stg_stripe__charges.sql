with

source as (

    select * from {{ source('landing', 'stripe__charges') }}

),

renamed as (

    select
        tenant_id,
        id as charge_id,
        customer as customer_id,
        invoice as invoice_id,
        currency,
        {{ minor_to_major('amount', 'currency') }} as amount,
        {{ minor_to_major('amount_captured', 'currency') }} as amount_captured,
        {{ minor_to_major('amount_refunded', 'currency') }} as amount_refunded,
        status,
        paid as is_paid,
        refunded as is_refunded,
        captured as is_captured,
        disputed as is_disputed,
        failure_code,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('updated') }} as updated_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
