{#
    The number of decimal places of a currency's minor unit, as Stripe counts them: 0 for Stripe's
    zero-decimal currencies (an amount of 1999 jpy is 1,999 yen), 3 for its three-decimal currencies
    (5124 kwd is 5.124 dinar), 2 for every other currency (1999 usd is 19.99 dollars).
    Source: https://docs.stripe.com/currencies (zero-decimal and three-decimal lists).
    Returns the exponent itself, and `currency_minor_unit_factor` the exact decimal factor
    (1, 0.01, 0.001) that turns minor units into major units by multiplication, so that no adapter
    divides: DuckDB divides decimals in floating point, Postgres in exact numeric.
#}

{% macro zero_decimal_currencies() -%}
    {{ return(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']) }}
{%- endmacro %}

{% macro three_decimal_currencies() -%}
    {{ return(['bhd', 'jod', 'kwd', 'omr', 'tnd']) }}
{%- endmacro %}

{% macro _currency_list_sql(codes) -%}
    {%- for code in codes %}'{{ code }}'{{ ', ' if not loop.last }}{% endfor -%}
{%- endmacro %}

{% macro currency_exponent(currency_column) -%}
    case
        when lower({{ currency_column }}) in ({{ _currency_list_sql(zero_decimal_currencies()) }}) then 0
        when lower({{ currency_column }}) in ({{ _currency_list_sql(three_decimal_currencies()) }}) then 3
        else 2
    end
{%- endmacro %}

{% macro currency_minor_unit_factor(currency_column) -%}
    case
        when lower({{ currency_column }}) in ({{ _currency_list_sql(zero_decimal_currencies()) }}) then 1.000
        when lower({{ currency_column }}) in ({{ _currency_list_sql(three_decimal_currencies()) }}) then 0.001
        else 0.010
    end
{%- endmacro %}
