-- Every currency a tenant uses, ranked by all-time gross (Stripe gross charged + Shopify gross
-- sales); rank 1 is the tenant's primary currency. No FX source exists, so money in the other
-- currencies is reported beside it, never converted into it.
-- Built in one group of every tenant (macros/table_per_tenant_group.sql): a run over the tenants
-- that changed rebuilds only their rows.
{{ config(materialized='table_per_tenant_group') }}
-- depends_on: {{ ref('int_tenant_syncs_dated') }}
with

stripe_gross as (

    select tenant_id, lower(currency) as currency, amount as gross
    from {{ ref('stg_stripe__charges') }}
    where status = 'succeeded' and {{ in_tenant_group('tenant_id') }}

),

shopify_gross as (

    select tenant_id, lower(currency) as currency, subtotal_price + total_discounts as gross
    from {{ ref('stg_shopify__orders') }}
    where not coalesce(is_test, false)
        and not coalesce(is_cancelled, false)
        and {{ in_tenant_group('tenant_id') }}

),

-- A tenant with subscriptions but no charge yet still gets a currency.
subscription_currencies as (

    select tenant_id, lower(currency) as currency, 0 as gross
    from {{ ref('stg_stripe__subscriptions') }}
    where {{ in_tenant_group('tenant_id') }}

),

gross_rows as (

    select * from stripe_gross
    union all
    select * from shopify_gross
    union all
    select * from subscription_currencies

),

gross_by_currency as (

    select tenant_id, currency, sum(gross) as gross
    from gross_rows
    where currency is not null
    group by tenant_id, currency

)

select
    tenant_id,
    currency,
    {{ marts_money('gross') }} as gross,
    {{ marts_count('row_number() over (partition by tenant_id order by gross desc, currency)') }}
        as currency_rank

from gross_by_currency
