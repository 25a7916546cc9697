-- One row per tenant and person across Stripe and Shopify, matched on the normalised email
-- (lower, trimmed). A customer without an email is a person of its own, keyed by its source id.
-- Built a group of tenants at a time on DuckDB (macros/table_per_tenant_group.sql): all 10,000
-- tenants' people at once ran out of its memory limit. The var tenants_per_group sizes the groups.
-- Postgres spills to disk instead, and reads every row for each group: one group by default.
-- A tenant's people follow its own inputs only (its own last day of activity, not the day
-- analysed): a run over the tenants that changed rebuilds the marked tenants alone, not those
-- whose day spine moved (macros/run_tenants.sql).
{{ config(
    materialized='table_per_tenant_group',
    tenants_per_group=var('tenants_per_group', 1000 if target.type == 'duckdb' else none),
    follows_day_analysed=false
) }}
-- depends_on: {{ ref('int_tenant_syncs_dated') }}
with

primary_currencies as (

    select tenant_id, currency
    from {{ ref('int_tenant_currencies_ranked') }}
    where currency_rank = 1 and {{ in_tenant_group('tenant_id') }}

),

tenant_latest_dates as (

    select distinct tenant_id, last_date
    from {{ ref('int_tenant_days_spined') }}
    where {{ in_tenant_group('tenant_id') }}

),

stripe_customers as (

    select
        tenant_id,
        customer_id,
        coalesce(email, 'stripe:' || customer_id) as customer_key,
        email,
        is_delinquent,
        created_at

    from {{ ref('stg_stripe__customers') }}
    where {{ in_tenant_group('tenant_id') }}

),

shopify_customers as (

    select
        tenant_id,
        customer_id,
        coalesce(email, 'shopify:' || cast(customer_id as varchar)) as customer_key,
        email,
        created_at

    from {{ ref('stg_shopify__customers') }}
    where {{ in_tenant_group('tenant_id') }}

),

charges_per_customer as (

    select
        charges.tenant_id,
        charges.customer_id,
        count(case when charges.status = 'succeeded' then 1 end) as stripe_charge_count,
        sum(
            case
                when charges.status = 'succeeded' and lower(charges.currency) = primary_currencies.currency
                    then charges.amount
                else 0
            end
        ) as stripe_gross,
        max(charges.created_at) as last_charge_at

    from {{ ref('stg_stripe__charges') }} as charges
    left join primary_currencies
        on charges.tenant_id = primary_currencies.tenant_id
    where charges.customer_id is not null and {{ in_tenant_group('charges.tenant_id') }}
    group by 1, 2

),

refunds_per_customer as (

    select
        charges.tenant_id,
        charges.customer_id,
        sum(refunds.amount) as stripe_refunded

    from {{ ref('stg_stripe__refunds') }} as refunds
    inner join {{ ref('stg_stripe__charges') }} as charges
        on refunds.tenant_id = charges.tenant_id
        and refunds.charge_id = charges.charge_id
    inner join primary_currencies
        on refunds.tenant_id = primary_currencies.tenant_id
        and lower(refunds.currency) = primary_currencies.currency
    where refunds.status = 'succeeded'
        and charges.customer_id is not null
        and {{ in_tenant_group('refunds.tenant_id') }}
    group by 1, 2

),

subscriptions as (

    select
        tenant_id,
        customer_id,
        subscription_id,
        status,
        created_at,
        -- greatest skips NULLs on both adapters.
        greatest(created_at, canceled_at, ended_at) as last_change_at

    from {{ ref('stg_stripe__subscriptions') }}
    where {{ in_tenant_group('tenant_id') }}

),

stripe_people as (

    select
        stripe_customers.tenant_id,
        stripe_customers.customer_key,
        min(stripe_customers.email) as email,
        min(stripe_customers.customer_id) as stripe_customer_id,
        min(stripe_customers.created_at) as first_seen_at,
        max(stripe_customers.created_at) as last_created_at,
        max(case when stripe_customers.is_delinquent then 1 else 0 end) = 1 as is_delinquent,
        sum(coalesce(charges_per_customer.stripe_charge_count, 0)) as stripe_charge_count,
        sum(coalesce(charges_per_customer.stripe_gross, 0)) as stripe_gross,
        sum(coalesce(refunds_per_customer.stripe_refunded, 0)) as stripe_refunded,
        max(charges_per_customer.last_charge_at) as last_charge_at

    from stripe_customers
    left join charges_per_customer
        on stripe_customers.tenant_id = charges_per_customer.tenant_id
        and stripe_customers.customer_id = charges_per_customer.customer_id
    left join refunds_per_customer
        on stripe_customers.tenant_id = refunds_per_customer.tenant_id
        and stripe_customers.customer_id = refunds_per_customer.customer_id
    group by 1, 2

),

subscriptions_per_person as (

    select
        stripe_customers.tenant_id,
        stripe_customers.customer_key,
        subscriptions.status,
        max(subscriptions.last_change_at) over (
            partition by stripe_customers.tenant_id, stripe_customers.customer_key
        ) as last_subscription_change_at,
        row_number() over (
            partition by stripe_customers.tenant_id, stripe_customers.customer_key
            order by subscriptions.created_at desc, subscriptions.subscription_id desc
        ) as recency

    from stripe_customers
    inner join subscriptions
        on stripe_customers.tenant_id = subscriptions.tenant_id
        and stripe_customers.customer_id = subscriptions.customer_id

),

-- The person's most recent subscription over all of their Stripe customers.
latest_subscriptions as (

    select tenant_id, customer_key, status as subscription_status, last_subscription_change_at
    from subscriptions_per_person
    where recency = 1

),

-- An order belongs to the person of its Shopify customer record, else to its own email.
orders_per_customer as (

    select
        orders.tenant_id,
        coalesce(
            shopify_customers.customer_key,
            orders.email,
            'shopify:' || cast(orders.customer_id as varchar)
        ) as customer_key,
        count(*) as shopify_order_count,
        sum(
            case
                when lower(orders.currency) = primary_currencies.currency
                    then orders.subtotal_price - orders.refunded_amount
                else 0
            end
        ) as shopify_net_sales,
        min(orders.created_at) as first_order_at,
        max(orders.created_at) as last_order_at

    from {{ ref('stg_shopify__orders') }} as orders
    left join shopify_customers
        on orders.tenant_id = shopify_customers.tenant_id
        and orders.customer_id = shopify_customers.customer_id
    left join primary_currencies
        on orders.tenant_id = primary_currencies.tenant_id
    where not coalesce(orders.is_test, false)
        and not coalesce(orders.is_cancelled, false)
        and (orders.email is not null or orders.customer_id is not null)
        and {{ in_tenant_group('orders.tenant_id') }}
    group by 1, 2

),

shopify_people as (

    select
        tenant_id,
        customer_key,
        min(email) as email,
        min(cast(customer_id as varchar)) as shopify_customer_id,
        min(created_at) as first_seen_at,
        max(created_at) as last_created_at

    from shopify_customers
    group by 1, 2

),

people as (

    select tenant_id, customer_key from stripe_people
    union
    select tenant_id, customer_key from shopify_people
    union
    select tenant_id, customer_key from orders_per_customer

),

joined as (

    select
        people.tenant_id,
        people.customer_key,
        coalesce(stripe_people.email, shopify_people.email) as email,
        stripe_people.stripe_customer_id,
        shopify_people.shopify_customer_id,
        primary_currencies.currency,
        tenant_latest_dates.last_date,
        coalesce(stripe_people.is_delinquent, false) as is_delinquent,
        latest_subscriptions.subscription_status,
        coalesce(stripe_people.stripe_charge_count, 0) as stripe_charge_count,
        coalesce(orders_per_customer.shopify_order_count, 0) as shopify_order_count,
        coalesce(stripe_people.stripe_gross, 0)
            - coalesce(stripe_people.stripe_refunded, 0)
            + coalesce(orders_per_customer.shopify_net_sales, 0) as lifetime_revenue,
        -- least and greatest skip NULLs on both adapters.
        least(
            stripe_people.first_seen_at,
            shopify_people.first_seen_at,
            orders_per_customer.first_order_at
        ) as first_seen_at,
        greatest(
            stripe_people.last_created_at,
            stripe_people.last_charge_at,
            latest_subscriptions.last_subscription_change_at,
            shopify_people.last_created_at,
            orders_per_customer.last_order_at
        ) as last_activity_at

    from people
    left join stripe_people
        on people.tenant_id = stripe_people.tenant_id
        and people.customer_key = stripe_people.customer_key
    left join shopify_people
        on people.tenant_id = shopify_people.tenant_id
        and people.customer_key = shopify_people.customer_key
    left join orders_per_customer
        on people.tenant_id = orders_per_customer.tenant_id
        and people.customer_key = orders_per_customer.customer_key
    left join latest_subscriptions
        on people.tenant_id = latest_subscriptions.tenant_id
        and people.customer_key = latest_subscriptions.customer_key
    left join primary_currencies
        on people.tenant_id = primary_currencies.tenant_id
    left join tenant_latest_dates
        on people.tenant_id = tenant_latest_dates.tenant_id

)

select
    tenant_id,
    cast(customer_key as varchar) as customer_key,
    cast(email as varchar) as email,
    cast(stripe_customer_id as varchar) as stripe_customer_id,
    cast(shopify_customer_id as varchar) as shopify_customer_id,
    first_seen_at,
    last_activity_at,
    cast(currency as varchar) as currency,
    {{ marts_money('lifetime_revenue') }} as lifetime_revenue,
    {{ marts_count('stripe_charge_count') }} as stripe_charge_count,
    {{ marts_count('shopify_order_count') }} as shopify_order_count,
    cast(subscription_status as varchar) as subscription_status,
    -- The churn-risk rule (documented in _marts__docs.md): a delinquent Stripe customer, a latest
    -- subscription past_due, unpaid or canceled, or no activity in the 60 days before the tenant's
    -- latest data while holding no live subscription. A value the source left NULL (delinquent,
    -- a date) counts as not known to be a risk.
    (
        coalesce(is_delinquent, false)
        or coalesce(subscription_status in ('past_due', 'unpaid', 'canceled'), false)
        or coalesce(
            {{ marts_day('last_activity_at') }} < cast(last_date - 60 as date)
            and coalesce(subscription_status not in ('active', 'trialing'), true),
            false
        )
    ) as is_churn_risk

from joined
