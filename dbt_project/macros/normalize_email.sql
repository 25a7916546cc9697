{#
    An email as the join key across sources: trimmed, lowercased, NULL when empty.
    Trims every kind of leading and trailing ASCII whitespace (tab, newline, vertical tab, form
    feed, carriage return, space), not only spaces as SQL's trim() does: real exports (and the
    simulator) carry addresses like ' Jane@x.com\t'. The characters are spelled out because `\s`
    differs between the adapters: DuckDB's leaves out the vertical tab, and Postgres's takes in
    other Unicode spaces by the server's locale.
#}
{% macro normalize_email(email_column) -%}
    nullif(lower(regexp_replace({{ email_column }}, '^[\t\n\v\f\r ]+|[\t\n\v\f\r ]+$', '', 'g')), '')
{%- endmacro %}
