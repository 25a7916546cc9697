{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['tenant_id', 'date'],
        on_schema_change='append_new_columns',
        pre_hook="{{ marts_delete_rebuilt_rows('date') }}"
    )
}}

-- GitHub activity per tenant and UTC day, every day from the tenant's first GitHub activity (a day
-- without pull requests still has open ones).
with

days as (

    select tenant_id, date
    from {{ ref('int_tenant_days_spined') }}
    where date >= first_github_date
        and {{ marts_in_window('date') }}

),

pull_requests as (

    select * from {{ ref('int_pull_requests_reviewed') }}

),

commits as (

    select
        tenant_id,
        {{ marts_day('committed_at') }} as date,
        -- A commit without a GitHub account is known by its author's email.
        coalesce(author_login, author_email) as author

    from {{ ref('stg_github__commits') }}
    where {{ marts_in_window(marts_day('committed_at')) }}

),

opened as (

    select tenant_id, created_date as date, count(*) as prs_opened
    from pull_requests
    where {{ marts_in_window('created_date') }}
    group by 1, 2

),

merged as (

    select
        tenant_id,
        merged_date as date,
        count(*) as prs_merged,
        {{ marts_percentile('hours_to_merge', 0.5) }} as median_hours_to_merge,
        {{ marts_percentile('hours_to_merge', 0.9) }} as p90_hours_to_merge,
        sum(case when has_approval then 1 else 0 end) as prs_merged_with_approval

    from pull_requests
    where is_merged
        and {{ marts_in_window('merged_date') }}
    group by 1, 2

),

closed_unmerged as (

    select tenant_id, closed_date as date, count(*) as prs_closed_unmerged
    from pull_requests
    where not is_merged
        and closed_date is not null
        and {{ marts_in_window('closed_date') }}
    group by 1, 2

),

first_reviews as (

    select
        tenant_id,
        first_reviewed_date as date,
        {{ marts_percentile('hours_to_first_review', 0.5) }} as median_hours_to_first_review

    from pull_requests
    where first_reviewed_date is not null
        and {{ marts_in_window('first_reviewed_date') }}
    group by 1, 2

),

commits_per_day as (

    select tenant_id, date, count(*) as commits
    from commits
    group by 1, 2

),

authors as (

    select tenant_id, created_date as date, author_login as author
    from pull_requests
    where {{ marts_in_window('created_date') }}
    union all
    select tenant_id, date, author
    from commits

),

authors_per_day as (

    select tenant_id, date, count(distinct author) as active_authors
    from authors
    where author is not null
    group by 1, 2

),

-- Open pull requests at a day's end: +1 on the day one is opened, -1 on the day it closes, summed
-- over all days up to this one (cheaper than joining every day to every pull request).
open_changes as (

    select tenant_id, created_date as date, 1 as open_change
    from pull_requests
    union all
    select tenant_id, closed_date, -1
    from pull_requests
    where closed_date is not null

),

open_changes_and_days as (

    select tenant_id, date, open_change from open_changes
    union all
    select tenant_id, date, 0 from days

),

open_at_day_end as (

    select
        tenant_id,
        date,
        sum(sum(open_change)) over (
            partition by tenant_id order by date rows between unbounded preceding and current row
        ) as open_prs_end_of_day

    from open_changes_and_days
    group by tenant_id, date

)

select
    days.tenant_id,
    days.date,
    {{ marts_count('coalesce(opened.prs_opened, 0)') }} as prs_opened,
    {{ marts_count('coalesce(merged.prs_merged, 0)') }} as prs_merged,
    {{ marts_count('coalesce(closed_unmerged.prs_closed_unmerged, 0)') }} as prs_closed_unmerged,
    merged.median_hours_to_merge,
    merged.p90_hours_to_merge,
    first_reviews.median_hours_to_first_review,
    {{ marts_ratio('merged.prs_merged_with_approval', 'merged.prs_merged') }} as review_coverage,
    {{ marts_count('coalesce(commits_per_day.commits, 0)') }} as commits,
    {{ marts_count('coalesce(authors_per_day.active_authors, 0)') }} as active_authors,
    {{ marts_count('open_at_day_end.open_prs_end_of_day') }} as open_prs_end_of_day

from days
left join opened
    on days.tenant_id = opened.tenant_id and days.date = opened.date
left join merged
    on days.tenant_id = merged.tenant_id and days.date = merged.date
left join closed_unmerged
    on days.tenant_id = closed_unmerged.tenant_id and days.date = closed_unmerged.date
left join first_reviews
    on days.tenant_id = first_reviews.tenant_id and days.date = first_reviews.date
left join commits_per_day
    on days.tenant_id = commits_per_day.tenant_id and days.date = commits_per_day.date
left join authors_per_day
    on days.tenant_id = authors_per_day.tenant_id and days.date = authors_per_day.date
left join open_at_day_end
    on days.tenant_id = open_at_day_end.tenant_id and days.date = open_at_day_end.date
