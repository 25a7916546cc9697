{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['tenant_id', 'month'],
        on_schema_change='append_new_columns',
        pre_hook="{{ marts_delete_rebuilt_rows('month', monthly=true) }}"
    )
}}

-- GitHub activity per tenant and month. Counts are the daily mart's summed; percentiles, review
-- coverage and distinct authors are recomputed over the month's pull requests and commits, never
-- averaged from days. A month's row reads only that month's rows, so a windowed run rebuilds the
-- months of the window's days (the running month, whose snapshot day moves, among them).
with

months as (

    select tenant_id, month, date as snapshot_date
    from {{ ref('int_tenant_days_spined') }}
    where is_month_snapshot
        and month >= {{ marts_month('first_github_date') }}
        and {{ marts_in_window('month', monthly=true) }}

),

daily as (

    select
        tenant_id,
        {{ marts_month('date') }} as month,
        sum(prs_opened) as prs_opened,
        sum(prs_merged) as prs_merged,
        sum(prs_closed_unmerged) as prs_closed_unmerged,
        sum(commits) as commits

    from {{ ref('developer_activity') }}
    where {{ marts_in_window(marts_month('date'), monthly=true) }}
    group by 1, 2

),

month_end_open as (

    select developer_activity.tenant_id, months.month, developer_activity.open_prs_end_of_day
    from {{ ref('developer_activity') }} as developer_activity
    inner join months
        on developer_activity.tenant_id = months.tenant_id
        and developer_activity.date = months.snapshot_date

),

pull_requests as (

    select * from {{ ref('int_pull_requests_reviewed') }}

),

merged as (

    select
        tenant_id,
        {{ marts_month('merged_date') }} as month,
        {{ marts_percentile('hours_to_merge', 0.5) }} as median_hours_to_merge,
        {{ marts_percentile('hours_to_merge', 0.9) }} as p90_hours_to_merge,
        count(*) as prs_merged,
        sum(case when has_approval then 1 else 0 end) as prs_merged_with_approval

    from pull_requests
    where is_merged
        and {{ marts_in_window(marts_month('merged_date'), monthly=true) }}
    group by 1, 2

),

first_reviews as (

    select
        tenant_id,
        {{ marts_month('first_reviewed_date') }} as month,
        {{ marts_percentile('hours_to_first_review', 0.5) }} as median_hours_to_first_review

    from pull_requests
    where first_reviewed_date is not null
        and {{ marts_in_window(marts_month('first_reviewed_date'), monthly=true) }}
    group by 1, 2

),

authors as (

    select
        tenant_id,
        {{ marts_month('created_date') }} as month,
        author_login as author

    from pull_requests
    union all
    select
        tenant_id,
        {{ marts_month(marts_day('committed_at')) }},
        coalesce(author_login, author_email)

    from {{ ref('stg_github__commits') }}

),

authors_per_month as (

    select tenant_id, month, count(distinct author) as active_authors
    from authors
    where author is not null
        and {{ marts_in_window('month', monthly=true) }}
    group by 1, 2

)

select
    months.tenant_id,
    months.month,
    {{ marts_count('coalesce(daily.prs_opened, 0)') }} as prs_opened,
    {{ marts_count('coalesce(daily.prs_merged, 0)') }} as prs_merged,
    {{ marts_count('coalesce(daily.prs_closed_unmerged, 0)') }} as prs_closed_unmerged,
    merged.median_hours_to_merge,
    merged.p90_hours_to_merge,
    first_reviews.median_hours_to_first_review,
    {{ marts_ratio('merged.prs_merged_with_approval', 'merged.prs_merged') }} as review_coverage,
    {{ marts_count('coalesce(daily.commits, 0)') }} as commits,
    {{ marts_count('coalesce(authors_per_month.active_authors, 0)') }} as active_authors,
    {{ marts_ratio('coalesce(daily.prs_merged, 0)', 'authors_per_month.active_authors', 4) }}
        as prs_merged_per_active_author,
    {{ marts_count('month_end_open.open_prs_end_of_day') }} as open_prs_end_of_month

from months
left join daily
    on months.tenant_id = daily.tenant_id and months.month = daily.month
left join merged
    on months.tenant_id = merged.tenant_id and months.month = merged.month
left join first_reviews
    on months.tenant_id = first_reviews.tenant_id and months.month = first_reviews.month
left join authors_per_month
    on months.tenant_id = authors_per_month.tenant_id and months.month = authors_per_month.month
left join month_end_open
    on months.tenant_id = month_end_open.tenant_id and months.month = month_end_open.month
