-- One row per tenant and UTC day from the tenant's first activity to the day analysed, so a quiet
-- last week reads as zeros, not as missing days; for a tenant whose newest successful sync is
-- older, to that sync's day: the days after it are unknown, not zero. Activity means dated events
-- (charges, invoices, refunds, pull requests, reviews, commits, orders, GA report days);
-- customers, subscriptions, repositories and products are left out because they can predate a
-- connector's start date by years and would stretch the history with empty days.
--
-- The day analysed is the newest day of any tenant's activity: the newest daily partition whenever
-- a sync brought that day's data. Landing quarantines rows dated more than a day after their sync,
-- so no tenant can push it into the future. (A dbt var would make every run of the views re-parse
-- the whole project.)
-- In a run over the tenants that changed, only their activity is read: every other tenant's first
-- and last days are kept from the table (macros/run_tenants.sql, kept_outside_run), and each
-- tenant's days are then laid out again to the newest day of any tenant. The tenants whose spine
-- moved join the run's tenants, and when they are then most tenants the rest of the run covers
-- every tenant.
{{ config(
    pre_hook="{{ run_spines_before() }}",
    post_hook=["{{ run_spines_moved() }}", "{{ run_spines_marked() }}", "{{ run_scope_widened() }}"],
) }}
{% set bounds = [
    'tenant_id', 'first_date', 'last_date', 'first_stripe_date', 'first_github_date',
    'first_shopify_date', 'first_google_analytics_date',
] %}
{% set kept = kept_outside_run(bounds) %}
{% set rebuilt = in_run_tenants() if kept else 'true' %}
with recursive

stripe_activity as (

    select tenant_id, {{ marts_day('created_at') }} as activity_date
    from {{ ref('stg_stripe__charges') }}
    union all
    select tenant_id, {{ marts_day('created_at') }}
    from {{ ref('stg_stripe__invoices') }}
    union all
    select tenant_id, {{ marts_day('created_at') }}
    from {{ ref('stg_stripe__refunds') }}

),

github_activity as (

    select tenant_id, {{ marts_day('created_at') }} as activity_date
    from {{ ref('stg_github__pull_requests') }}
    union all
    select tenant_id, {{ marts_day('merged_at') }}
    from {{ ref('stg_github__pull_requests') }}
    union all
    select tenant_id, {{ marts_day('closed_at') }}
    from {{ ref('stg_github__pull_requests') }}
    union all
    select tenant_id, {{ marts_day('submitted_at') }}
    from {{ ref('stg_github__reviews') }}
    union all
    select tenant_id, {{ marts_day('committed_at') }}
    from {{ ref('stg_github__commits') }}

),

shopify_activity as (

    select tenant_id, {{ marts_day('created_at') }} as activity_date
    from {{ ref('stg_shopify__orders') }}

),

google_analytics_activity as (

    select tenant_id, report_date as activity_date
    from {{ ref('stg_google_analytics__website_overview') }}
    union all
    select tenant_id, report_date
    from {{ ref('stg_google_analytics__conversions_report') }}

),

activity as (

    select tenant_id, activity_date, 'stripe' as source from stripe_activity
    union all
    select tenant_id, activity_date, 'github' from github_activity
    union all
    select tenant_id, activity_date, 'shopify' from shopify_activity
    union all
    select tenant_id, activity_date, 'google_analytics' from google_analytics_activity

),

tenant_bounds as (

    select
        tenant_id,
        min(activity_date) as first_date,
        max(activity_date) as last_date,
        min(case when source = 'stripe' then activity_date end) as first_stripe_date,
        min(case when source = 'github' then activity_date end) as first_github_date,
        min(case when source = 'shopify' then activity_date end) as first_shopify_date,
        min(case when source = 'google_analytics' then activity_date end)
            as first_google_analytics_date

    from activity
    where activity_date is not null and {{ rebuilt }}
    group by tenant_id
    {% if kept %}
    union all
    select distinct {{ bounds | join(', ') }}
    from {{ kept }}
    where not ({{ rebuilt }})
    {% endif %}

),

newest_syncs as (

    select tenant_id, max(synced_date) as synced_date
    from {{ ref('int_tenant_syncs_dated') }}
    group by tenant_id

),

analysed as (

    select tenant_bounds.*, max(tenant_bounds.last_date) over () as as_of_date
    from tenant_bounds

),

tenant_ranges as (

    select
        analysed.*,
        greatest(
            analysed.last_date,
            least(analysed.as_of_date, coalesce(newest_syncs.synced_date, analysed.as_of_date))
        ) as through_date

    from analysed
    left join newest_syncs
        on analysed.tenant_id = newest_syncs.tenant_id

),

-- One calendar for all tenants, then each tenant takes its range of it: the recursion is as deep
-- as the longest history, not as wide as the number of tenants.
calendar as (

    select min(first_date) as date, max(as_of_date) as as_of_date
    from analysed
    having min(first_date) is not null

    union all

    select cast(date + 1 as date), as_of_date
    from calendar
    where date < as_of_date

),

tenant_days as (

    select
        tenant_ranges.tenant_id,
        calendar.date,
        {{ marts_month('calendar.date') }} as month,
        tenant_ranges.first_date,
        tenant_ranges.last_date,
        tenant_ranges.as_of_date,
        tenant_ranges.through_date,
        tenant_ranges.first_stripe_date,
        tenant_ranges.first_github_date,
        tenant_ranges.first_shopify_date,
        tenant_ranges.first_google_analytics_date

    from tenant_ranges
    inner join calendar
        on calendar.date between tenant_ranges.first_date and tenant_ranges.through_date

)

select
    tenant_id,
    date,
    month,
    -- The day a month's end-of-month state is read on: its last day, or the tenant's last day for
    -- the month still running.
    (date = through_date or {{ marts_month('cast(date + 1 as date)') }} <> month)
        as is_month_snapshot,
    first_date,
    last_date,
    as_of_date,
    through_date,
    first_stripe_date,
    first_github_date,
    first_shopify_date,
    first_google_analytics_date

from tenant_days
