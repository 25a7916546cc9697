{# Generic test: every non-NULL value of `column_name` is one of `values`; a finding about each
   tenant sending another, with one of its values as the example. #}
{% test accepted_values_per_tenant(model, column_name, values) %}
{% call tenant_findings() %}
    select tenant_id, cast({{ column_name }} as varchar) as example
    from {{ model }}
    where {{ column_name }} is not null
        and {{ column_name }} not in (
            {%- for value in values %}'{{ value }}'{{ ", " if not loop.last }}{% endfor -%}
        )
{% endcall %}
{% endtest %}
