with

source as (

    select * from {{ source('landing', 'github__reviews') }}

),

renamed as (

    select
        tenant_id,
        id as review_id,
        repository,
        -- https://api.github.com/repos/<owner>/<repo>/pulls/<number>
        {{ trailing_integer('pull_request_url') }} as pull_request_number,
        state,
        {{ json_text('"user"', ['login']) }} as reviewer_login,
        submitted_at,
        created_at,
        updated_at,
        _airbyte_extracted_at as synced_at

    from source

)

select * from renamed
