with

source as (

    select * from {{ source('landing', 'stripe__refunds') }}

),

renamed as (

    select
        tenant_id,
        id as refund_id,
        charge as charge_id,
        currency,
        {{ minor_to_major('amount', 'currency') }} as amount,
        status,
        reason,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('updated') }} as updated_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
