{#
    The number of elements of a JSON array column; NULL when the value is NULL or not an array.
#}
{% macro json_array_size(json_column) -%}
    {{ return(adapter.dispatch('json_array_size')(json_column)) }}
{%- endmacro %}

{% macro duckdb__json_array_size(json_column) -%}
    case when json_type({{ json_column }}) = 'ARRAY' then cast(json_array_length({{ json_column }}) as bigint) end
{%- endmacro %}

{% macro postgres__json_array_size(json_column) -%}
    case
        when jsonb_typeof(cast({{ json_column }} as jsonb)) = 'array'
            then cast(jsonb_array_length(cast({{ json_column }} as jsonb)) as bigint)
    end
{%- endmacro %}
