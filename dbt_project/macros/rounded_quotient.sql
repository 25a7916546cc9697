{#
    DuckDB divides DECIMALs in double precision, so a quotient that should round half away from
    zero at the 4th decimal can land on the other side (0.57 / 8 = 0.07125 gives 0.0712 in DuckDB,
    0.0713 in Postgres, whose numeric division is exact). Where a model divides money or durations,
    DuckDB instead divides integers: `duckdb_rounded_quotient(n, d)` is n / d rounded half away from
    zero, for integer n and a positive integer d, in exact integer arithmetic.
#}
{% macro duckdb_rounded_quotient(numerator, denominator) -%}
    case
        when ({{ numerator }}) >= 0
            then (({{ numerator }}) * 2 + ({{ denominator }})) // (({{ denominator }}) * 2)
        else -(((-({{ numerator }})) * 2 + ({{ denominator }})) // (({{ denominator }}) * 2))
    end
{%- endmacro %}
