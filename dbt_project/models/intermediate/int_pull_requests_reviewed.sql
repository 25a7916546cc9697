-- Each pull request with what its reviews tell: when the first review came and whether any review
-- approved it. Reviews point at their pull request by repository and number.
-- Built in one group of every tenant (macros/table_per_tenant_group.sql): a run over the tenants
-- that changed rebuilds only their rows.
{{ config(materialized='table_per_tenant_group') }}
-- depends_on: {{ ref('int_tenant_syncs_dated') }}
with

pull_requests as (

    select * from {{ ref('stg_github__pull_requests') }}
    where {{ in_tenant_group('tenant_id') }}

),

reviews as (

    select * from {{ ref('stg_github__reviews') }}
    where submitted_at is not null and {{ in_tenant_group('tenant_id') }}

),

reviews_per_pull_request as (

    select
        tenant_id,
        repository,
        pull_request_number,
        min(submitted_at) as first_reviewed_at,
        max(case when upper(state) = 'APPROVED' then 1 else 0 end) as has_approval

    from reviews
    group by tenant_id, repository, pull_request_number

)

select
    pull_requests.tenant_id,
    pull_requests.pull_request_id,
    pull_requests.repository,
    pull_requests.number,
    pull_requests.author_login,
    pull_requests.state,
    pull_requests.is_merged,
    pull_requests.created_at,
    pull_requests.closed_at,
    pull_requests.merged_at,
    {{ marts_day('pull_requests.created_at') }} as created_date,
    {{ marts_day('pull_requests.closed_at') }} as closed_date,
    {{ marts_day('pull_requests.merged_at') }} as merged_date,
    pull_requests.hours_to_merge,
    reviews_per_pull_request.first_reviewed_at,
    {{ marts_day('reviews_per_pull_request.first_reviewed_at') }} as first_reviewed_date,
    {{ marts_hours_between('pull_requests.created_at', 'reviews_per_pull_request.first_reviewed_at') }}
        as hours_to_first_review,
    coalesce(reviews_per_pull_request.has_approval, 0) = 1 as has_approval

from pull_requests
left join reviews_per_pull_request
    on pull_requests.tenant_id = reviews_per_pull_request.tenant_id
    and pull_requests.repository = reviews_per_pull_request.repository
    and pull_requests.number = reviews_per_pull_request.pull_request_number
