{#
    The window of this run: the row of ops.dbt_run_window the platform wrote for it
    (platform/tenantpulse/transform/windows.py), named by the environment variable
    TENANTPULSE_DBT_RUN_ID. A row, not `--vars`: vars that differ from the saved parse make dbt
    parse the whole project again on every run. Without the variable (`tenantpulse dbt build`,
    a full refresh) there is no window: every date is built and every row tested. None while
    parsing (nothing is read then). One query per call: the row is read when a model or test is
    compiled.
#}
{% macro run_window() -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set run_id = env_var('TENANTPULSE_DBT_RUN_ID', '') -%}
    {%- if not run_id -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not modules.re.fullmatch('[A-Za-z0-9_-]{1,64}', run_id) -%}
        {{ exceptions.raise_compiler_error('TENANTPULSE_DBT_RUN_ID: not a run id: ' ~ run_id) }}
    {%- endif -%}
    {%- set found = run_query(
        "select cast(start_date as varchar), cast(end_date as varchar), history_tenants,"
        ~ " cast(recent_from as varchar), cast(tests_since as varchar), changed_tenants_only, widened"
        ~ " from ops.dbt_run_window where run_id = '" ~ run_id ~ "'"
    ) -%}
    {%- if found.rows | length != 1 -%}
        {{ exceptions.raise_compiler_error('no row in ops.dbt_run_window for run ' ~ run_id) }}
    {%- endif -%}
    {%- set row = found.rows[0] -%}
    {{ return({
        'start_date': marts_iso_day(row[0]),
        'end_date': marts_iso_day(row[1]),
        'history_tenants': (row[2] or '').split(',') | reject('equalto', '') | list,
        'recent_from': marts_iso_day(row[3]),
        'tests_since': marts_iso_day(row[4]),
        'changed_tenants_only': row[5] is true,
        'widened': row[6] is true,
        'run_id': run_id,
    }) }}
{%- endmacro %}

{# A YYYY-MM-DD day read back from the warehouse, checked to be one before it is written into SQL. #}
{% macro marts_iso_day(value) -%}
    {%- if value is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(modules.datetime.date.fromisoformat(value | string).isoformat()) }}
{%- endmacro %}
