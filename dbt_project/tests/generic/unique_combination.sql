{#
    Generic test: no two rows share the values of `combination_of_columns` (a composite key such as
    tenant_id + charge_id). Fails with one row per duplicated combination.
#}
{% test unique_combination(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as row_count
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
