with

source as (

    select * from {{ source('landing', 'stripe__subscriptions') }}

),

-- The first item's price carries the amount and the billing interval; the legacy `plan` object
-- holds the same for single-item subscriptions and stands in when `items` lacks them.
first_item as (

    select
        *,
        coalesce(
            currency,
            {{ json_text('items', ['data', 0, 'price', 'currency']) }},
            {{ json_text('plan', ['currency']) }}
        ) as price_currency,
        -- unit_amount_decimal (a string, may hold fractions of a cent) is set when unit_amount is not.
        cast(coalesce(
            {{ json_text('items', ['data', 0, 'price', 'unit_amount']) }},
            {{ json_text('items', ['data', 0, 'price', 'unit_amount_decimal']) }},
            {{ json_text('plan', ['amount']) }},
            {{ json_text('plan', ['amount_decimal']) }}
        ) as numeric(38, 9)) as unit_amount_minor,
        cast({{ json_text('items', ['data', 0, 'quantity']) }} as bigint) as item_quantity,
        coalesce(
            {{ json_text('items', ['data', 0, 'price', 'recurring', 'interval']) }},
            {{ json_text('plan', ['interval']) }}
        ) as price_interval,
        cast(coalesce(
            {{ json_text('items', ['data', 0, 'price', 'recurring', 'interval_count']) }},
            {{ json_text('plan', ['interval_count']) }}
        ) as bigint) as price_interval_count

    from source
    where not coalesce(is_deleted, false)

),

renamed as (

    select
        tenant_id,
        id as subscription_id,
        customer as customer_id,
        status,
        price_currency as currency,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('start_date') }} as started_at,
        {{ epoch_to_timestamp('current_period_start') }} as current_period_start,
        {{ epoch_to_timestamp('current_period_end') }} as current_period_end,
        {{ epoch_to_timestamp('canceled_at') }} as canceled_at,
        {{ epoch_to_timestamp('ended_at') }} as ended_at,
        {{ epoch_to_timestamp('trial_start') }} as trial_start,
        {{ epoch_to_timestamp('trial_end') }} as trial_end,
        coalesce(cancel_at_period_end, false) as cancel_at_period_end,
        {{ minor_to_major('unit_amount_minor', 'price_currency') }} as unit_amount,
        coalesce(item_quantity, quantity, 1) as quantity,
        price_interval as billing_interval,
        coalesce(nullif(price_interval_count, 0), 1) as billing_interval_count,
        {{ epoch_to_timestamp('updated') }} as updated_at,
        _airbyte_extracted_at as synced_at

    from first_item

),

normalised as (

    select
        *,
        {{ monthly_amount('unit_amount * quantity', 'billing_interval', 'billing_interval_count') }}
            as monthly_amount

    from renamed

)

select
    tenant_id,
    subscription_id,
    customer_id,
    status,
    currency,
    created_at,
    started_at,
    current_period_start,
    current_period_end,
    canceled_at,
    ended_at,
    trial_start,
    trial_end,
    cancel_at_period_end,
    unit_amount,
    quantity,
    billing_interval,
    billing_interval_count,
    monthly_amount,
    updated_at,
    synced_at

from normalised
