{# dbt wraps the model a generic test reads in this macro (the `where` config). Overridden so that
   an incremental run tests only the rows that changed. With `tests_since` in the run's window
   (macros/run_window.sql; set by the flow once a run of these tests has passed), the tests of the
   staging views check the rows synced on or after that day; older rows were checked when they
   landed. In a run over the tenants that changed (macros/run_tenants.sql), the tests of every
   model check those tenants' rows: the others' rows did not change, and were checked by the run
   that built them (a tenant stays marked until a run over it succeeds). Without either (the
   first build, `tenantpulse dbt build`) every row is checked. The other side of a relationship
   test is never filtered. #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set window = run_window() -%}
    {%- if window and window.tests_since and relation.schema == 'staging' -%}
        {%- set recent = "synced_at >= cast('" ~ window.tests_since ~ " 00:00:00+00' as timestamp with time zone)" -%}
        {%- set where = "(" ~ where ~ ") and " ~ recent if where else recent -%}
    {%- endif -%}
    {%- if run_scope(window) -%}
        {%- set rebuilt = in_run_tenants(window=window) -%}
        {%- set where = "(" ~ where ~ ") and " ~ rebuilt if where else rebuilt -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return("(select * from " ~ relation ~ " where " ~ where ~ ") dbt_subquery") -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
