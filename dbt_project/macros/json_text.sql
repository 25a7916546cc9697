{#
    A scalar inside a JSON / JSONB column, as text (NULL when absent or JSON null).
    `path` is a list of object keys and array indexes: json_text('items', ['data', 0, 'price', 'unit_amount']).
    Only for scalars: objects and arrays come back as JSON text whose spacing differs by adapter.
#}
{% macro json_text(json_column, path) -%}
    {{ return(adapter.dispatch('json_text')(json_column, path)) }}
{%- endmacro %}

{% macro duckdb__json_text(json_column, path) -%}
    json_extract_string({{ json_column }}, '$
    {%- for key in path -%}
        {%- if key is number -%}[{{ key }}]{%- else -%}."{{ key }}"{%- endif -%}
    {%- endfor -%}
    ')
{%- endmacro %}

{% macro postgres__json_text(json_column, path) -%}
    (cast({{ json_column }} as jsonb) #>> '{ {%- for key in path -%}{{ key }}{{ ',' if not loop.last }}{%- endfor -%} }')
{%- endmacro %}

{% macro default__json_text(json_column, path) -%}
    {{ exceptions.raise_compiler_error("json_text has no implementation for adapter " ~ adapter.type()) }}
{%- endmacro %}
