{#
    An email as the join key across sources: trimmed, lowercased, NULL when empty.
    Trims every kind of leading and trailing whitespace (tabs, newlines), not only spaces as SQL's
    trim() does: real exports (and the simulator) carry addresses like ' Jane@x.com\t'.
#}
{% macro normalize_email(email_column) -%}
    nullif(lower(regexp_replace({{ email_column }}, '^\s+|\s+$', '', 'g')), '')
{%- endmacro %}
