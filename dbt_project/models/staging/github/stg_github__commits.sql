with

source as (

    select * from {{ source('landing', 'github__commits') }}

),

renamed as (

    select
        tenant_id,
        sha as commit_sha,
        repository,
        branch,
        created_at as committed_at,
        -- `author` is the GitHub account (NULL when the commit email has none); `commit.author` is
        -- the git author as written in the commit.
        {{ json_text('author', ['login']) }} as author_login,
        {{ normalize_email(json_text('commit', ['author', 'email'])) }} as author_email,
        {{ json_text('commit', ['message']) }} as message,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
