-- Each paid Stripe subscription's active period, rebuilt from its latest state: it counts towards
-- MRR from the day its trial (if any) ended to the day it ended. Landing keeps one version per
-- subscription, so a past period carries the subscription's current price and quantity.
-- Built in one group of every tenant (macros/table_per_tenant_group.sql): a run over the tenants
-- that changed rebuilds only their rows.
{{ config(materialized='table_per_tenant_group') }}
-- depends_on: {{ ref('int_tenant_syncs_dated') }}
with

subscriptions as (

    select * from {{ ref('stg_stripe__subscriptions') }}
    where {{ in_tenant_group('tenant_id') }}

),

active_periods as (

    select
        tenant_id,
        subscription_id,
        customer_id,
        lower(currency) as currency,
        status,
        monthly_amount,
        case
            -- A trialing subscription is not yet paying: active from its trial's end, if it has one.
            when status = 'trialing' then trial_end
            when trial_end is not null and trial_end > started_at then trial_end
            else started_at
        end as active_from,
        case
            when ended_at is not null then ended_at
            when status = 'canceled' then coalesce(canceled_at, updated_at)
            -- Stripe leaves ended_at empty on an unpaid (or paused) subscription; it stopped
            -- paying at its last change (the final failed retry, the pause).
            when status in ('unpaid', 'paused') then updated_at
        end as active_until

    from subscriptions
    -- incomplete: the first payment has not gone through; incomplete_expired: it never did.
    where status not in ('incomplete', 'incomplete_expired')
        and monthly_amount > 0

)

select
    tenant_id,
    subscription_id,
    customer_id,
    currency,
    status,
    monthly_amount,
    active_from,
    active_until,
    {{ marts_day('active_from') }} as active_from_date,
    {{ marts_day('active_until') }} as active_until_date

from active_periods
where active_from is not null
    -- A subscription cancelled during its trial, or within its first day, was never paying at a
    -- day's end.
    and (active_until is null or {{ marts_day('active_until') }} > {{ marts_day('active_from') }})
