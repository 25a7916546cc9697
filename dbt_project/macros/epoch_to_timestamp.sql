{#
    Unix epoch seconds (Stripe's integer or decimal timestamps) as a timestamptz.
    `to_timestamp(double)` returns timestamp with time zone on both DuckDB and Postgres; the explicit
    double cast picks that overload for bigint and decimal(38,9) inputs alike.
#}
{% macro epoch_to_timestamp(epoch_column) -%}
    to_timestamp(cast({{ epoch_column }} as double precision))
{%- endmacro %}
