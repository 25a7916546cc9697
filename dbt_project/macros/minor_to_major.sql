{#
    An amount in a currency's minor unit (Stripe: integer cents, yen, fils) as a decimal amount in
    major units, numeric(38,4): 1999 usd -> 19.99, 1999 jpy -> 1999, 5124 kwd -> 5.124.
    A NULL currency counts as a two-decimal one (Stripe's default).
#}
{% macro minor_to_major(amount_column, currency_column) -%}
    cast(({{ amount_column }}) * {{ currency_minor_unit_factor(currency_column) }} as numeric(38, 4))
{%- endmacro %}
