{#
    Decimal hours from one timestamp to a later one, numeric(18,4), rounded half away from zero;
    NULL when either is NULL. Postgres (14+): `extract(epoch from interval)` is an exact numeric
    (a timestamp difference has no month part, so no 30-day month is assumed). DuckDB: its epoch is
    a double, so it divides the integer microseconds instead (see rounded_quotient.sql); both give
    58.5001 for 58.50005 hours.
#}
{% macro hours_between(start_column, end_column) -%}
    {{ return(adapter.dispatch('hours_between')(start_column, end_column)) }}
{%- endmacro %}

{% macro default__hours_between(start_column, end_column) -%}
    cast(extract(epoch from ({{ end_column }} - {{ start_column }})) / 3600.0 as numeric(18, 4))
{%- endmacro %}

{% macro duckdb__hours_between(start_column, end_column) -%}
    {#- 360,000 microseconds make 0.0001 hour -#}
    cast(
        cast(
            {{ duckdb_rounded_quotient("epoch_us(" ~ end_column ~ ") - epoch_us(" ~ start_column ~ ")", 360000) }}
            as numeric(18, 0)
        ) * 0.0001
        as numeric(18, 4)
    )
{%- endmacro %}
