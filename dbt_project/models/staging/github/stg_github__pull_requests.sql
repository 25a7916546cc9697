with

source as (

    select * from {{ source('landing', 'github__pull_requests') }}

),

renamed as (

    select
        tenant_id,
        id as pull_request_id,
        repository,
        number,
        state,
        title,
        coalesce(draft, false) as is_draft,
        {{ json_text('"user"', ['login']) }} as author_login,
        created_at,
        updated_at,
        closed_at,
        merged_at,
        -- The pull_requests stream has no `merged` flag: a merge time is the only sign of a merge.
        merged_at is not null as is_merged,
        {{ hours_between('created_at', 'merged_at') }} as hours_to_merge,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
