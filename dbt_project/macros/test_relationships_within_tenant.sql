{#
    Generic test: every non-NULL value of `column_name` exists as `field` in `to` for the same
    tenant (ids are only unique within a tenant). `match_columns` adds columns that must match too
    and have the same name on both sides (e.g. ['repository'] for a PR number). A finding about
    each tenant with values missing from `to`, one of them (with its match columns) as the example.
#}
{% test relationships_within_tenant(model, column_name, to, field, match_columns=[]) %}
{% call tenant_findings() %}
    with child as (
        select tenant_id, {{ column_name }} as key_value
            {%- for column in match_columns %}, {{ column }}{% endfor %}
        from {{ model }}
        where {{ column_name }} is not null
    )

    -- Not a join to the parent's distinct keys: that hashes every key of the parent (every
    -- charge of every tenant) when an incremental run tests only the newest child rows.
    select
        child.tenant_id,
        concat_ws(', ', cast(child.key_value as varchar)
            {%- for column in match_columns %}, cast(child.{{ column }} as varchar){% endfor %}) as example
    from child
    where not exists (
        select 1
        from {{ to }} as parent
        where parent.tenant_id = child.tenant_id
            and parent.{{ field }} = child.key_value
            {%- for column in match_columns %}
            and parent.{{ column }} = child.{{ column }}
            {%- endfor %}
    )
{% endcall %}
{% endtest %}
