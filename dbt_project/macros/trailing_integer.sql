{#
    The integer at the end of a string (the PR number of a GitHub pull_request_url such as
    https://api.github.com/repos/acme/api/pulls/42), bigint; NULL when it does not end in digits.
#}
{% macro trailing_integer(text_column) -%}
    {{ return(adapter.dispatch('trailing_integer')(text_column)) }}
{%- endmacro %}

{% macro duckdb__trailing_integer(text_column) -%}
    cast(nullif(regexp_extract({{ text_column }}, '([0-9]+)$', 1), '') as bigint)
{%- endmacro %}

{% macro postgres__trailing_integer(text_column) -%}
    cast(substring({{ text_column }} from '([0-9]+)$') as bigint)
{%- endmacro %}
