{# Generic test: no two rows share the values of `combination_of_columns`, which include
   tenant_id; a finding about each tenant with rows that do, the shared values as the example. #}
{% test unique_combination_per_tenant(model, combination_of_columns) %}
{%- set others = combination_of_columns | reject('equalto', 'tenant_id') | list %}
{% call tenant_findings() %}
    select tenant_id, example
    from (
        select
            tenant_id,
            concat_ws(', '{% for column in others %}, cast({{ column }} as varchar){% endfor %}) as example,
            count(*) over (partition by {{ combination_of_columns | join(', ') }}) as copies
        from {{ model }}
    ) counted
    where copies > 1
{% endcall %}
{% endtest %}
