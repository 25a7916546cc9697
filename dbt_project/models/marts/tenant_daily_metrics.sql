{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['tenant_id', 'date'],
        on_schema_change='append_new_columns',
        pre_hook="{{ marts_delete_rebuilt_rows('date') }}",
        indexes=marts_postgres_indexes([{'columns': ['tenant_id', 'date']}])
    )
}}

-- The history the analysis reads: one row per tenant and UTC day from its first activity to the
-- day analysed or its newest sync (int_tenant_days_spined), zeros on quiet days, with the newest sync known at each
-- day's end. Money is in the tenant's primary currency only; counts and rates cover every
-- currency.
with

days as (

    select *
    from {{ ref('int_tenant_days_spined') }}
    where {{ marts_in_window('date') }}

),

primary_currencies as (

    select tenant_id, currency
    from {{ ref('int_tenant_currencies_ranked') }}
    where currency_rank = 1

),

revenue as (

    select
        revenue_daily.tenant_id,
        revenue_daily.date,
        sum(
            case
                when revenue_daily.currency = primary_currencies.currency
                    then revenue_daily.net_revenue + revenue_daily.shopify_net_sales
                else 0
            end
        ) as revenue,
        sum(
            case
                when revenue_daily.currency = primary_currencies.currency
                    then revenue_daily.refunded
                else 0
            end
        ) as refunded,
        sum(revenue_daily.new_customers) as new_customers,
        sum(revenue_daily.charges_failed) as charges_failed,
        sum(revenue_daily.charges_succeeded) as charges_succeeded

    from {{ ref('revenue_daily') }} as revenue_daily
    inner join primary_currencies
        on revenue_daily.tenant_id = primary_currencies.tenant_id
    where {{ marts_in_window('revenue_daily.date', 'revenue_daily.tenant_id') }}
    group by 1, 2

),

subscriptions as (

    select subscriptions.*, subscriptions.currency = primary_currencies.currency as is_primary
    from {{ ref('int_subscriptions_activated') }} as subscriptions
    inner join primary_currencies
        on subscriptions.tenant_id = primary_currencies.tenant_id

),

-- MRR and active subscriptions at a day's end: each subscription adds on the day it became
-- active and subtracts on the day it ended; the running sum over all days up to this one is the
-- state at its end.
subscription_changes as (

    select
        tenant_id,
        active_from_date as date,
        case when is_primary then monthly_amount else 0 end as mrr_change,
        1 as subscriptions_change,
        0 as subscriptions_ended

    from subscriptions
    union all
    select
        tenant_id,
        active_until_date,
        case when is_primary then -monthly_amount else 0 end,
        -1,
        1

    from subscriptions
    where active_until_date is not null

),

subscription_changes_and_days as (

    select tenant_id, date, mrr_change, subscriptions_change, subscriptions_ended
    from subscription_changes
    union all
    select tenant_id, date, 0, 0, 0
    from days

),

subscriptions_at_day_end as (

    select
        tenant_id,
        date,
        sum(sum(mrr_change)) over (
            partition by tenant_id order by date rows between unbounded preceding and current row
        ) as mrr,
        sum(sum(subscriptions_change)) over (
            partition by tenant_id order by date rows between unbounded preceding and current row
        ) as active_subscriptions,
        sum(subscriptions_ended) as subscriptions_canceled

    from subscription_changes_and_days
    group by tenant_id, date

),

-- The newest successful sync at each day's end: a running max over the sync days and the days
-- built (syncs before the window count too).
syncs_at_day_end as (

    select
        tenant_id,
        date,
        max(max(last_synced_at)) over (
            partition by tenant_id order by date rows between unbounded preceding and current row
        ) as last_synced_at

    from (
        select tenant_id, synced_date as date, last_synced_at
        from {{ ref('int_tenant_syncs_dated') }}
        union all
        select tenant_id, date, cast(null as timestamp with time zone)
        from days
    ) as sync_days
    group by tenant_id, date

),

developer_activity as (

    select * from {{ ref('developer_activity') }}
    where {{ marts_in_window('date') }}

),

website_analytics as (

    select * from {{ ref('website_analytics') }}
    where {{ marts_in_window('date') }}

)

select
    days.tenant_id,
    days.date,
    cast(primary_currencies.currency as varchar) as currency,
    {{ marts_money('coalesce(revenue.revenue, 0)') }} as revenue,
    {{ marts_money('coalesce(subscriptions_at_day_end.mrr, 0)') }} as mrr,
    {{ marts_count('coalesce(subscriptions_at_day_end.active_subscriptions, 0)') }}
        as active_subscriptions,
    {{ marts_count('coalesce(subscriptions_at_day_end.subscriptions_canceled, 0)') }}
        as subscriptions_canceled,
    {{ marts_count('coalesce(revenue.new_customers, 0)') }} as new_customers,
    {{ marts_count('coalesce(revenue.charges_failed, 0)') }} as charges_failed,
    {{ marts_count('coalesce(revenue.charges_succeeded, 0)') }} as charges_succeeded,
    {{ marts_ratio('revenue.charges_failed', 'revenue.charges_failed + revenue.charges_succeeded') }}
        as failed_charge_rate,
    {{ marts_money('coalesce(revenue.refunded, 0)') }} as refunded,
    {{ marts_count('coalesce(developer_activity.prs_opened, 0)') }} as prs_opened,
    {{ marts_count('coalesce(developer_activity.prs_merged, 0)') }} as prs_merged,
    developer_activity.median_hours_to_merge,
    {{ marts_count('coalesce(developer_activity.commits, 0)') }} as commits,
    {{ marts_count('coalesce(website_analytics.sessions, 0)') }} as sessions,
    {{ marts_count('coalesce(website_analytics.total_users, 0)') }} as total_users,
    {{ marts_count('coalesce(website_analytics.conversions, 0)') }} as conversions,
    website_analytics.bounce_rate,
    coalesce(days.date >= days.first_stripe_date, false) as has_stripe,
    coalesce(days.date >= days.first_github_date, false) as has_github,
    coalesce(days.date >= days.first_shopify_date, false) as has_shopify,
    coalesce(days.date >= days.first_google_analytics_date, false) as has_google_analytics,
    syncs_at_day_end.last_synced_at

from days
left join primary_currencies
    on days.tenant_id = primary_currencies.tenant_id
left join revenue
    on days.tenant_id = revenue.tenant_id and days.date = revenue.date
left join subscriptions_at_day_end
    on days.tenant_id = subscriptions_at_day_end.tenant_id
    and days.date = subscriptions_at_day_end.date
left join developer_activity
    on days.tenant_id = developer_activity.tenant_id and days.date = developer_activity.date
left join website_analytics
    on days.tenant_id = website_analytics.tenant_id and days.date = website_analytics.date
left join syncs_at_day_end
    on days.tenant_id = syncs_at_day_end.tenant_id and days.date = syncs_at_day_end.date
