{# dbt wraps the model a generic test reads in this macro (the `where` config). Overridden so that
   an incremental run can test only new rows: with the var `test_synced_since` (a YYYY-MM-DD day,
   set by the pipeline once a run of these tests has passed), the tests of the staging views check the
   rows synced on or after that day; older rows were checked when they landed. Without the var
   (the first build, `tenantpulse dbt build`, a run from the UI) every row is checked. The other
   side of a relationship test is never filtered. #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set since = var('test_synced_since', none) -%}
    {%- if since and relation.schema == 'staging' -%}
        {%- set day = modules.datetime.date.fromisoformat(since | string) -%}
        {%- set recent = "synced_at >= cast('" ~ day.isoformat() ~ " 00:00:00+00' as timestamp with time zone)" -%}
        {%- set where = "(" ~ where ~ ") and " ~ recent if where else recent -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return("(select * from " ~ relation ~ " where " ~ where ~ ") dbt_subquery") -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
