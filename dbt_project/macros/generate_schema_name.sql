{# Models go to the schema their folder names (staging, intermediate, analytics), not
   "<target schema>_<name>": the platform and the docs refer to these schemas by name. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
