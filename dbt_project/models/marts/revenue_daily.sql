{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['tenant_id', 'date', 'currency'],
        on_schema_change='append_new_columns',
        pre_hook="{{ marts_delete_rebuilt_rows('date') }}"
    )
}}

-- Money per tenant, UTC day and currency, Stripe and Shopify side by side; never summed across
-- currencies.
with

primary_currencies as (

    select tenant_id, currency
    from {{ ref('int_tenant_currencies_ranked') }}
    where currency_rank = 1

),

charges as (

    select
        tenant_id,
        {{ marts_day('created_at') }} as date,
        lower(currency) as currency,
        status,
        amount

    from {{ ref('stg_stripe__charges') }}
    where {{ marts_in_window(marts_day('created_at')) }}

),

charges_per_day as (

    select
        tenant_id,
        date,
        currency,
        sum(case when status = 'succeeded' then amount else 0 end) as gross_charged,
        sum(case when status = 'succeeded' then 1 else 0 end) as charges_succeeded,
        sum(case when status = 'failed' then 1 else 0 end) as charges_failed

    from charges
    group by tenant_id, date, currency

),

refunds_per_day as (

    select
        tenant_id,
        {{ marts_day('created_at') }} as date,
        lower(currency) as currency,
        sum(amount) as refunded

    from {{ ref('stg_stripe__refunds') }}
    where status = 'succeeded'
        and {{ marts_in_window(marts_day('created_at')) }}
    group by 1, 2, 3

),

-- A customer has no currency until first billed: count it in the tenant's primary currency.
new_customers_per_day as (

    select
        customers.tenant_id,
        {{ marts_day('customers.created_at') }} as date,
        coalesce(lower(customers.currency), primary_currencies.currency) as currency,
        count(*) as new_customers

    from {{ ref('stg_stripe__customers') }} as customers
    left join primary_currencies
        on customers.tenant_id = primary_currencies.tenant_id
    where {{ marts_in_window(marts_day('customers.created_at'), 'customers.tenant_id') }}
    group by 1, 2, 3

),

shopify_orders_per_day as (

    select
        tenant_id,
        {{ marts_day('created_at') }} as date,
        lower(currency) as currency,
        count(*) as shopify_orders,
        sum(subtotal_price + total_discounts) as shopify_gross_sales,
        sum(total_discounts) as shopify_discounts,
        sum(refunded_amount) as shopify_refunds

    from {{ ref('stg_shopify__orders') }}
    where not coalesce(is_test, false)
        and not coalesce(is_cancelled, false)
        and {{ marts_in_window(marts_day('created_at')) }}
    group by 1, 2, 3

),

tenant_day_currencies as (

    select tenant_id, date, currency from charges_per_day
    union
    select tenant_id, date, currency from refunds_per_day
    union
    select tenant_id, date, currency from new_customers_per_day
    union
    select tenant_id, date, currency from shopify_orders_per_day

),

joined as (

    select
        keys.tenant_id,
        keys.date,
        keys.currency,
        coalesce(charges_per_day.gross_charged, 0) as gross_charged,
        coalesce(refunds_per_day.refunded, 0) as refunded,
        coalesce(charges_per_day.charges_succeeded, 0) as charges_succeeded,
        coalesce(charges_per_day.charges_failed, 0) as charges_failed,
        coalesce(new_customers_per_day.new_customers, 0) as new_customers,
        coalesce(shopify_orders_per_day.shopify_orders, 0) as shopify_orders,
        coalesce(shopify_orders_per_day.shopify_gross_sales, 0) as shopify_gross_sales,
        coalesce(shopify_orders_per_day.shopify_discounts, 0) as shopify_discounts,
        coalesce(shopify_orders_per_day.shopify_refunds, 0) as shopify_refunds

    from tenant_day_currencies as keys
    left join charges_per_day
        on keys.tenant_id = charges_per_day.tenant_id
        and keys.date = charges_per_day.date
        and keys.currency = charges_per_day.currency
    left join refunds_per_day
        on keys.tenant_id = refunds_per_day.tenant_id
        and keys.date = refunds_per_day.date
        and keys.currency = refunds_per_day.currency
    left join new_customers_per_day
        on keys.tenant_id = new_customers_per_day.tenant_id
        and keys.date = new_customers_per_day.date
        and keys.currency = new_customers_per_day.currency
    left join shopify_orders_per_day
        on keys.tenant_id = shopify_orders_per_day.tenant_id
        and keys.date = shopify_orders_per_day.date
        and keys.currency = shopify_orders_per_day.currency

)

select
    tenant_id,
    date,
    cast(currency as varchar) as currency,
    {{ marts_money('gross_charged') }} as gross_charged,
    {{ marts_money('refunded') }} as refunded,
    {{ marts_money('gross_charged - refunded') }} as net_revenue,
    {{ marts_count('charges_succeeded') }} as charges_succeeded,
    {{ marts_count('charges_failed') }} as charges_failed,
    {{ marts_ratio('charges_failed', 'charges_succeeded + charges_failed') }} as failed_charge_rate,
    {{ marts_count('new_customers') }} as new_customers,
    {{ marts_count('shopify_orders') }} as shopify_orders,
    {{ marts_money('shopify_gross_sales') }} as shopify_gross_sales,
    {{ marts_money('shopify_discounts') }} as shopify_discounts,
    {{ marts_money('shopify_refunds') }} as shopify_refunds,
    {{ marts_money('shopify_gross_sales - shopify_discounts - shopify_refunds') }} as shopify_net_sales

from joined
where currency is not null
