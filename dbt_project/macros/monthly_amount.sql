{#
    A recurring amount normalised to one month, numeric(38,4), as ChartMogul and Baremetrics count
    MRR: month / interval_count; year / (12 x interval_count); week x 52/12 / interval_count;
    day x 365/12 / interval_count. NULL for an unknown interval; an interval_count of NULL or 0
    counts as 1. `amount` must have at most 4 decimals (a numeric(38,4) money column times a
    quantity). The result is rounded half away from zero on both adapters: Postgres divides numerics
    exactly; DuckDB divides integers (see rounded_quotient.sql).
#}
{% macro monthly_amount(amount, billing_interval, billing_interval_count) -%}
    {{ return(adapter.dispatch('monthly_amount')(amount, billing_interval, billing_interval_count)) }}
{%- endmacro %}

{# amount x numerator / denominator is the monthly amount #}
{% macro _monthly_numerator(billing_interval) -%}
    case {{ billing_interval }} when 'week' then 52 when 'day' then 365 else 1 end
{%- endmacro %}

{% macro _monthly_denominator(billing_interval, billing_interval_count) -%}
    (case {{ billing_interval }} when 'month' then 1 when 'year' then 12 when 'week' then 12 when 'day' then 12 end
        * coalesce(nullif({{ billing_interval_count }}, 0), 1))
{%- endmacro %}

{% macro default__monthly_amount(amount, billing_interval, billing_interval_count) -%}
    cast(
        cast({{ amount }} as numeric) * {{ _monthly_numerator(billing_interval) }}
        / {{ _monthly_denominator(billing_interval, billing_interval_count) }}
        as numeric(38, 4)
    )
{%- endmacro %}

{% macro duckdb__monthly_amount(amount, billing_interval, billing_interval_count) -%}
    {#- the amount in ten-thousandths, an exact integer -#}
    {%- set numerator = "cast((" ~ amount ~ ") * 10000 as hugeint) * " ~ _monthly_numerator(billing_interval) -%}
    cast(
        cast(
            {{ duckdb_rounded_quotient(numerator, _monthly_denominator(billing_interval, billing_interval_count)) }}
            as numeric(38, 0)
        ) * 0.0001
        as numeric(38, 4)
    )
{%- endmacro %}
