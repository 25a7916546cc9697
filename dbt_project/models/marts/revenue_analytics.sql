-- Monthly revenue per tenant and currency: MRR at the month's end and its movements (ChartMogul's
-- definitions, per customer between consecutive month ends), churn, ARPA, LTV, and the month's
-- charges, refunds and Shopify sales. Built as unified_customers is (macros/table_per_tenant_group.sql),
-- in one group: a day's run over the tenants that changed rebuilds only their rows.
{{ config(
    materialized='table_per_tenant_group'
) }}
-- depends_on: {{ ref('int_tenant_syncs_dated') }}
with

months as (

    -- snapshot_date: the month's last day, or the tenant's last day for the month still running.
    select tenant_id, month, date as snapshot_date
    from {{ ref('int_tenant_days_spined') }}
    where is_month_snapshot and {{ in_tenant_group('tenant_id') }}

),

-- The month before the first one, so the first month's movements have a starting point.
base_months as (

    select
        tenant_id,
        {{ marts_month(dbt.dateadd('month', -1, 'min(month)')) }} as month,
        cast(min(month) - 1 as date) as snapshot_date

    from months
    group by tenant_id

),

snapshots as (

    select tenant_id, month, snapshot_date from months
    union all
    select tenant_id, month, snapshot_date from base_months

),

subscriptions as (

    select
        *,
        min(active_from_date) over (partition by tenant_id, currency, customer_id)
            as first_paying_date

    from {{ ref('int_subscriptions_activated') }}
    where {{ in_tenant_group('tenant_id') }}

),

customer_mrr as (

    select
        snapshots.tenant_id,
        snapshots.month,
        subscriptions.currency,
        subscriptions.customer_id,
        sum(subscriptions.monthly_amount) as mrr,
        min(subscriptions.first_paying_date) as first_paying_date

    from snapshots
    inner join subscriptions
        on snapshots.tenant_id = subscriptions.tenant_id
        and subscriptions.active_from_date <= snapshots.snapshot_date
        and (
            subscriptions.active_until_date is null
            or subscriptions.active_until_date > snapshots.snapshot_date
        )
    group by 1, 2, 3, 4

),

-- Every (customer, month) pair where the customer pays at this month's end or paid at the
-- previous one, with both amounts: each customer_mrr row counts as its month's MRR and as the next
-- month's previous MRR. Summed, not joined: Postgres estimates one row for these CTEs and joined
-- them to each other in nested loops, quadratic in the number of customers.
customer_months as (

    select
        tenant_id,
        month,
        currency,
        customer_id,
        sum(mrr) as mrr,
        sum(previous_mrr) as previous_mrr,
        min(first_paying_date) as first_paying_date

    from (
        select tenant_id, month, currency, customer_id, mrr, 0 as previous_mrr, first_paying_date
        from customer_mrr
        union all
        select
            customer_mrr.tenant_id,
            months.month,
            customer_mrr.currency,
            customer_mrr.customer_id,
            0 as mrr,
            customer_mrr.mrr as previous_mrr,
            customer_mrr.first_paying_date
        from customer_mrr
        inner join months
            on customer_mrr.tenant_id = months.tenant_id
            and months.month = {{ marts_month(dbt.dateadd('month', 1, 'customer_mrr.month')) }}
    ) as month_amounts
    group by 1, 2, 3, 4

),

customer_movements as (

    select
        customer_months.tenant_id,
        customer_months.month,
        customer_months.currency,
        customer_months.customer_id,
        customer_months.mrr,
        customer_months.previous_mrr,
        -- Paid at some point before the previous month's end: coming back is a reactivation.
        customer_months.first_paying_date <= previous_months.snapshot_date as paid_before

    from customer_months
    inner join months as current_months
        on customer_months.tenant_id = current_months.tenant_id
        and customer_months.month = current_months.month
    inner join snapshots as previous_months
        on customer_months.tenant_id = previous_months.tenant_id
        and previous_months.month = {{ marts_month(dbt.dateadd('month', -1, 'customer_months.month')) }}

),

mrr_per_month as (

    select
        tenant_id,
        month,
        currency,
        sum(mrr) as mrr,
        sum(previous_mrr) as previous_mrr,
        sum(case when previous_mrr = 0 and mrr > 0 and not paid_before then mrr else 0 end)
            as new_mrr,
        sum(case when previous_mrr > 0 and mrr > previous_mrr then mrr - previous_mrr else 0 end)
            as expansion_mrr,
        sum(case when previous_mrr > 0 and mrr > 0 and mrr < previous_mrr then previous_mrr - mrr else 0 end)
            as contraction_mrr,
        sum(case when previous_mrr > 0 and mrr = 0 then previous_mrr else 0 end) as churned_mrr,
        sum(case when previous_mrr = 0 and mrr > 0 and paid_before then mrr else 0 end)
            as reactivation_mrr,
        sum(case when mrr > 0 then 1 else 0 end) as paying_customers,
        sum(case when previous_mrr > 0 then 1 else 0 end) as previous_paying_customers,
        sum(case when previous_mrr > 0 and mrr = 0 then 1 else 0 end) as churned_customers

    from customer_movements
    group by 1, 2, 3

),

revenue_per_month as (

    select
        tenant_id,
        {{ marts_month('date') }} as month,
        currency,
        sum(gross_charged) as gross_charged,
        sum(refunded) as refunded,
        sum(net_revenue) as net_revenue,
        sum(shopify_net_sales) as shopify_net_sales,
        sum(shopify_orders) as shopify_orders

    from {{ ref('revenue_daily') }}
    where {{ in_tenant_group('tenant_id') }}
    group by 1, 2, 3

),

-- Repeat customer rate over the month: of the Shopify customers who ordered in the month, those
-- who placed more than one order in it.
shopify_orders as (

    select
        tenant_id,
        lower(currency) as currency,
        coalesce(cast(customer_id as varchar), email) as shopify_customer,
        {{ marts_month(marts_day('created_at')) }} as month

    from {{ ref('stg_shopify__orders') }}
    where not coalesce(is_test, false)
        and not coalesce(is_cancelled, false)
        and {{ in_tenant_group('tenant_id') }}

),

shopify_customer_months as (

    select tenant_id, currency, shopify_customer, month, count(*) as orders
    from shopify_orders
    where shopify_customer is not null
    group by 1, 2, 3, 4

),

repeat_customers_per_month as (

    select
        tenant_id,
        month,
        currency,
        count(*) as ordering_customers,
        sum(case when orders > 1 then 1 else 0 end) as repeat_customers

    from shopify_customer_months
    group by 1, 2, 3

),

tenant_currencies as (

    -- A row without a currency (a WARN naming its tenant in staging) has no money column here.
    select distinct tenant_id, currency from mrr_per_month where currency is not null
    union
    select distinct tenant_id, currency from revenue_per_month where currency is not null
    union
    select distinct tenant_id, currency from repeat_customers_per_month
    where currency is not null

),

-- Every month of the tenant's history for every currency it uses, so a month without activity
-- reads as zero, not as a gap.
month_currencies as (

    select months.tenant_id, months.month, tenant_currencies.currency
    from months
    inner join tenant_currencies
        on months.tenant_id = tenant_currencies.tenant_id

),

joined as (

    select
        month_currencies.tenant_id,
        month_currencies.month,
        month_currencies.currency,
        coalesce(mrr_per_month.mrr, 0) as mrr,
        coalesce(mrr_per_month.previous_mrr, 0) as previous_mrr,
        coalesce(mrr_per_month.new_mrr, 0) as new_mrr,
        coalesce(mrr_per_month.expansion_mrr, 0) as expansion_mrr,
        coalesce(mrr_per_month.contraction_mrr, 0) as contraction_mrr,
        coalesce(mrr_per_month.churned_mrr, 0) as churned_mrr,
        coalesce(mrr_per_month.reactivation_mrr, 0) as reactivation_mrr,
        coalesce(mrr_per_month.paying_customers, 0) as paying_customers,
        coalesce(mrr_per_month.previous_paying_customers, 0) as previous_paying_customers,
        coalesce(mrr_per_month.churned_customers, 0) as churned_customers,
        coalesce(revenue_per_month.gross_charged, 0) as gross_charged,
        coalesce(revenue_per_month.refunded, 0) as refunded,
        coalesce(revenue_per_month.net_revenue, 0) as net_revenue,
        coalesce(revenue_per_month.shopify_net_sales, 0) as shopify_net_sales,
        coalesce(revenue_per_month.shopify_orders, 0) as shopify_orders,
        coalesce(repeat_customers_per_month.ordering_customers, 0) as ordering_customers,
        coalesce(repeat_customers_per_month.repeat_customers, 0) as repeat_customers

    from month_currencies
    left join mrr_per_month
        on month_currencies.tenant_id = mrr_per_month.tenant_id
        and month_currencies.month = mrr_per_month.month
        and month_currencies.currency = mrr_per_month.currency
    left join revenue_per_month
        on month_currencies.tenant_id = revenue_per_month.tenant_id
        and month_currencies.month = revenue_per_month.month
        and month_currencies.currency = revenue_per_month.currency
    left join repeat_customers_per_month
        on month_currencies.tenant_id = repeat_customers_per_month.tenant_id
        and month_currencies.month = repeat_customers_per_month.month
        and month_currencies.currency = repeat_customers_per_month.currency

),

rates as (

    select
        *,
        {{ marts_ratio('mrr', 'paying_customers', 4) }} as arpa,
        {{ marts_ratio('churned_customers', 'previous_paying_customers') }} as customer_churn_rate

    from joined

)

select
    tenant_id,
    month,
    cast(currency as varchar) as currency,
    {{ marts_money('mrr') }} as mrr,
    {{ marts_money('new_mrr') }} as new_mrr,
    {{ marts_money('expansion_mrr') }} as expansion_mrr,
    {{ marts_money('contraction_mrr') }} as contraction_mrr,
    {{ marts_money('churned_mrr') }} as churned_mrr,
    {{ marts_money('reactivation_mrr') }} as reactivation_mrr,
    {{ marts_ratio('mrr - previous_mrr', 'previous_mrr') }} as mrr_growth_mom,
    {{ marts_ratio('churned_mrr + contraction_mrr', 'previous_mrr') }} as gross_mrr_churn_rate,
    {{ marts_ratio('churned_mrr + contraction_mrr - expansion_mrr - reactivation_mrr', 'previous_mrr') }}
        as net_mrr_churn_rate,
    {{ marts_count('paying_customers') }} as paying_customers,
    {{ marts_count('churned_customers') }} as churned_customers,
    arpa,
    customer_churn_rate,
    -- arpa / customer_churn_rate from the unrounded parts; NULL when no customer churned.
    {{ marts_ratio('mrr * previous_paying_customers', 'paying_customers * churned_customers', 4) }}
        as ltv,
    {{ marts_money('gross_charged') }} as gross_charged,
    {{ marts_money('refunded') }} as refunded,
    {{ marts_ratio('refunded', 'gross_charged') }} as refund_rate,
    {{ marts_money('net_revenue') }} as net_revenue,
    {{ marts_money('shopify_net_sales') }} as shopify_net_sales,
    {{ marts_count('shopify_orders') }} as shopify_orders,
    {{ marts_ratio('repeat_customers', 'ordering_customers') }} as repeat_customer_rate

from rates
