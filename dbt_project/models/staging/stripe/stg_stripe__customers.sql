with

source as (

    select * from {{ source('landing', 'stripe__customers') }}

),

renamed as (

    select
        tenant_id,
        id as customer_id,
        {{ normalize_email('email') }} as email,
        name,
        currency,
        {{ minor_to_major('balance', 'currency') }} as balance,
        delinquent as is_delinquent,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('updated') }} as updated_at,
        _airbyte_extracted_at as synced_at

    from source
    where not coalesce(is_deleted, false)

)

select * from renamed
