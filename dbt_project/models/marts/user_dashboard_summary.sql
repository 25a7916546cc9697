{{ config(
    materialized='table_per_tenant_group',
    indexes=marts_postgres_indexes([{'columns': ['tenant_id']}])
) }}
-- depends_on: {{ ref('int_tenant_syncs_dated') }}

-- One row per tenant with the headline numbers as of the tenant's last day in
-- tenant_daily_metrics (the day analysed, or its newest sync's day when older): a table, so the dashboard reads one row instead of aggregating the
-- history. Money is in the primary currency; customer counts and rates cover every currency.
with

daily as (

    select * from {{ ref('tenant_daily_metrics') }}
    where {{ in_tenant_group('tenant_id') }}

),

latest as (

    select tenant_id, max(date) as as_of_date
    from daily
    group by tenant_id

),

windows as (

    select
        daily.tenant_id,
        sum(case when daily.date > cast(latest.as_of_date - 30 as date) then daily.revenue else 0 end)
            as revenue_30d,
        sum(
            case
                when daily.date <= cast(latest.as_of_date - 30 as date)
                    and daily.date > cast(latest.as_of_date - 60 as date) then daily.revenue
                else 0
            end
        ) as revenue_prev_30d,
        -- Growth over 30 days needs both windows whole: 60 days with a revenue source.
        sum(
            case
                when daily.date > cast(latest.as_of_date - 60 as date)
                    and (daily.has_stripe or daily.has_shopify) then 1
                else 0
            end
        ) as revenue_days_60d,
        sum(case when daily.date > cast(latest.as_of_date - 30 as date) then daily.charges_failed else 0 end)
            as charges_failed_30d,
        sum(case when daily.date > cast(latest.as_of_date - 30 as date) then daily.charges_succeeded else 0 end)
            as charges_succeeded_30d,
        sum(case when daily.date > cast(latest.as_of_date - 30 as date) then daily.prs_merged else 0 end)
            as prs_merged_30d,
        sum(case when daily.date > cast(latest.as_of_date - 30 as date) then daily.sessions else 0 end)
            as sessions_30d,
        sum(
            case
                when daily.date > cast(latest.as_of_date - 30 as date)
                    then coalesce(daily.bounce_rate, 0) * daily.sessions
                else 0
            end
        ) as bounced_sessions_30d,
        sum(case when daily.date > cast(latest.as_of_date - 30 as date) then daily.conversions else 0 end)
            as conversions_30d

    from daily
    inner join latest
        on daily.tenant_id = latest.tenant_id
    group by daily.tenant_id

),

latest_days as (

    select daily.*
    from daily
    inner join latest
        on daily.tenant_id = latest.tenant_id
        and daily.date = latest.as_of_date

),

merge_times_30d as (

    select
        pull_requests.tenant_id,
        {{ marts_percentile('pull_requests.hours_to_merge', 0.5) }} as median_hours_to_merge_30d

    from {{ ref('int_pull_requests_reviewed') }} as pull_requests
    inner join latest
        on pull_requests.tenant_id = latest.tenant_id
    where pull_requests.is_merged
        and {{ in_tenant_group('pull_requests.tenant_id') }}
        and pull_requests.merged_date > cast(latest.as_of_date - 30 as date)
        and pull_requests.merged_date <= latest.as_of_date
    group by pull_requests.tenant_id

),

-- Customer counts over every currency, per month.
customers_per_month as (

    select
        tenant_id,
        month,
        sum(paying_customers) as paying_customers,
        sum(churned_customers) as churned_customers

    from {{ ref('revenue_analytics') }}
    where {{ in_tenant_group('tenant_id') }}
    group by tenant_id, month

),

-- The latest complete month: the one before the month of as_of_date, or that month itself when
-- as_of_date is its last day.
complete_months as (

    select
        tenant_id,
        as_of_date,
        case
            when {{ marts_month('cast(as_of_date + 1 as date)') }} <> {{ marts_month('as_of_date') }}
                then {{ marts_month('as_of_date') }}
            else {{ marts_month(dbt.dateadd('month', -1, marts_month('as_of_date'))) }}
        end as complete_month

    from latest

),

complete_month_metrics as (

    select
        complete_months.tenant_id,
        primary_revenue.mrr_growth_mom,
        {{ marts_ratio('current_customers.churned_customers', 'previous_customers.paying_customers') }}
            as customer_churn_rate

    from complete_months
    left join {{ ref('int_tenant_currencies_ranked') }} as primary_currencies
        on complete_months.tenant_id = primary_currencies.tenant_id
        and primary_currencies.currency_rank = 1
    left join {{ ref('revenue_analytics') }} as primary_revenue
        on complete_months.tenant_id = primary_revenue.tenant_id
        and complete_months.complete_month = primary_revenue.month
        and primary_currencies.currency = primary_revenue.currency
    left join customers_per_month as current_customers
        on complete_months.tenant_id = current_customers.tenant_id
        and complete_months.complete_month = current_customers.month
    left join customers_per_month as previous_customers
        on complete_months.tenant_id = previous_customers.tenant_id
        and previous_customers.month
            = {{ marts_month(dbt.dateadd('month', -1, 'complete_months.complete_month')) }}

),

paying_now as (

    select customers_per_month.tenant_id, customers_per_month.paying_customers
    from customers_per_month
    inner join latest
        on customers_per_month.tenant_id = latest.tenant_id
        and customers_per_month.month = {{ marts_month('latest.as_of_date') }}

)

select
    latest.tenant_id,
    latest.as_of_date,
    latest_days.currency,
    latest_days.mrr,
    complete_month_metrics.mrr_growth_mom,
    {{ marts_money('windows.revenue_30d') }} as revenue_30d,
    {{ marts_money('windows.revenue_prev_30d') }} as revenue_prev_30d,
    case
        when windows.revenue_days_60d = 60
            then {{ marts_ratio('windows.revenue_30d - windows.revenue_prev_30d', 'windows.revenue_prev_30d') }}
    end as revenue_growth_30d,
    {{ marts_count('coalesce(paying_now.paying_customers, 0)') }} as paying_customers,
    complete_month_metrics.customer_churn_rate,
    {{ marts_ratio('windows.charges_failed_30d', 'windows.charges_failed_30d + windows.charges_succeeded_30d') }}
        as failed_charge_rate_30d,
    {{ marts_count('windows.prs_merged_30d') }} as prs_merged_30d,
    merge_times_30d.median_hours_to_merge_30d,
    {{ marts_count('windows.sessions_30d') }} as sessions_30d,
    {{ marts_ratio('windows.bounced_sessions_30d', 'windows.sessions_30d') }} as bounce_rate_30d,
    {{ marts_ratio('windows.conversions_30d', 'windows.sessions_30d') }} as conversion_rate_30d,
    latest_days.last_synced_at

from latest
inner join latest_days
    on latest.tenant_id = latest_days.tenant_id
inner join windows
    on latest.tenant_id = windows.tenant_id
left join complete_month_metrics
    on latest.tenant_id = complete_month_metrics.tenant_id
left join merge_times_30d
    on latest.tenant_id = merge_times_30d.tenant_id
left join paying_now
    on latest.tenant_id = paying_now.tenant_id
