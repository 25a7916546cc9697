with

source as (

    select * from {{ source('landing', 'github__issues') }}

),

renamed as (

    select
        tenant_id,
        id as issue_id,
        repository,
        number,
        state,
        state_reason,
        title,
        {{ json_text('"user"', ['login']) }} as author_login,
        comments as comment_count,
        -- GitHub lists every pull request as an issue too; those carry a `pull_request` object
        -- (a JSON null counts as absent, whichever way the destination wrote it).
        coalesce(cast(pull_request as varchar), 'null') <> 'null' as is_pull_request,
        created_at,
        updated_at,
        closed_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
