{# Generic test: `column_name` is never NULL; a finding about each tenant with NULLs. #}
{% test not_null_per_tenant(model, column_name) %}
{% call tenant_findings() %}
    select tenant_id, cast(null as varchar) as example
    from {{ model }}
    where {{ column_name }} is null
{% endcall %}
{% endtest %}
