{#
    A Google Analytics `date` dimension ('20240131') as a DATE. Tolerates the dashed form
    ('2024-01-31') too, so either connector setting reads the same.
#}
{% macro ga_date(date_column) -%}
    cast(
        substr(replace({{ date_column }}, '-', ''), 1, 4)
        || '-' || substr(replace({{ date_column }}, '-', ''), 5, 2)
        || '-' || substr(replace({{ date_column }}, '-', ''), 7, 2)
        as date
    )
{%- endmacro %}
