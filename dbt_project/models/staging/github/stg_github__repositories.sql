with

source as (

    select * from {{ source('landing', 'github__repositories') }}

),

renamed as (

    select
        tenant_id,
        id as repository_id,
        full_name as repository,
        name,
        {{ json_text('owner', ['login']) }} as owner_login,
        private as is_private,
        fork as is_fork,
        archived as is_archived,
        default_branch,
        language,
        stargazers_count,
        forks_count,
        open_issues_count,
        created_at,
        updated_at,
        pushed_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
