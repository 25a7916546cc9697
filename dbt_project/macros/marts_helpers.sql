{#
    Helpers of the intermediate and mart models. Each keeps one DuckDB/Postgres difference in one
    place: integer division, division by zero, date_trunc's return type, percentile types.
#}

{# A UTC day (DATE) from a timestamptz; the connections run in UTC. #}
{% macro marts_day(timestamp_column) -%}
    cast({{ timestamp_column }} as date)
{%- endmacro %}

{# The first day of the month as a DATE (date_trunc gives DATE on DuckDB, TIMESTAMPTZ on Postgres). #}
{% macro marts_month(date_column) -%}
    cast(date_trunc('month', {{ date_column }}) as date)
{%- endmacro %}

{# Money in one fixed type so both adapters store and compare it identically. #}
{% macro marts_money(expression) -%}
    cast({{ expression }} as numeric(38, 4))
{%- endmacro %}

{# A count as bigint: sum(bigint) is numeric on Postgres and hugeint on DuckDB. #}
{% macro marts_count(expression) -%}
    cast({{ expression }} as bigint)
{%- endmacro %}

{#
    A double as numeric(38, scale), rounded the same way on both adapters: DuckDB rounds a double's
    exact binary value (16.12944999.. -> 16.1294), Postgres its shortest decimal form (16.12945 ->
    16.1295). Going through 10 decimals first makes both round 16.1294500000 half away from zero.
#}
{% macro marts_round_double(expression, scale) -%}
    cast(cast({{ expression }} as numeric(38, 10)) as numeric(38, {{ scale }}))
{%- endmacro %}

{#
    numerator / denominator as numeric(38,6), NULL when the denominator is 0 or NULL (never inf,
    never a division-by-zero error). Both sides go through double precision, so neither integer
    division (Postgres) nor decimal-to-double promotion (DuckDB) makes the adapters disagree.
#}
{% macro marts_ratio(numerator, denominator, scale=6) -%}
    {{ marts_round_double(
        'cast(' ~ numerator ~ ' as double precision) / nullif(cast(' ~ denominator ~ ' as double precision), 0)',
        scale
    ) }}
{%- endmacro %}

{#
    A continuous percentile (linear interpolation, as Postgres and DuckDB both define
    percentile_cont) as numeric(38,4). Postgres only accepts double precision or interval input.
#}
{% macro marts_percentile(expression, fraction) -%}
    {{ marts_round_double(
        'percentile_cont(' ~ fraction ~ ') within group (order by cast(' ~ expression ~ ' as double precision))',
        4
    ) }}
{%- endmacro %}

{# The run's window (macros/run_window.sql) when this run rebuilds only part of an incremental
   model: its dates [start_date, end_date); none on the first build, a full refresh, or a run
   without a window. #}
{% macro marts_window() -%}
    {%- if not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set window = run_window() -%}
    {{ return(window if window and window.start_date and window.end_date else none) }}
{%- endmacro %}

{#
    A predicate keeping the rows a run rebuilds: the window's dates on a windowed incremental run,
    every date otherwise (the first build, a full refresh, a run without a window). A row without
    its date is on no day: it is left out (its staging model's not_null_per_tenant test warns,
    naming the tenant). With history tenants in the window (tenants whose history was just
    landed), only those tenants' rows are kept before `recent_from`; `tenant_column` names the
    tenant of `date_expression`'s row. With `monthly`, `date_expression` is a month (its first
    day) and the window's months are kept: those of its days.
    In a run over the tenants that changed (macros/run_tenants.sql), only theirs.
#}
{% macro marts_in_window(date_expression, tenant_column='tenant_id', monthly=false) -%}
    {%- set window = marts_window() -%}
    {%- if window -%}
        {%- set history = marts_tenant_ids(window.history_tenants) -%}
        ({{ date_expression }} >= cast('{{ marts_window_bound(window.start_date, monthly) }}' as date)
         and {{ date_expression }} < cast('{{ window.end_date }}' as date)
        {%- if history %}
         and ({{ date_expression }} >= cast('{{ marts_window_bound(window.recent_from, monthly) }}' as date)
              or {{ tenant_column }} in (
                  {%- for tenant_id in history %}'{{ tenant_id }}'{{ ", " if not loop.last }}{% endfor -%}
              ))
        {%- endif %}
         and {{ in_run_tenants(tenant_column) }})
    {%- else -%}
        ({{ date_expression }} is not null)
    {%- endif -%}
{%- endmacro %}

{# A window's first day; with `monthly`, the first day of its month: a monthly mart keyed by
   `month` (the month's first day) rebuilds every month the window's days fall in. #}
{% macro marts_window_bound(day, monthly) -%}
    {%- set first = modules.datetime.date.fromisoformat(day) -%}
    {{ return((first.replace(day=1) if monthly else first).isoformat()) }}
{%- endmacro %}

{# Tenant ids (the window's history tenants, a run's tenants), each checked to be a tenant id
   (tenantpulse.tenants.ids) before it is written into SQL as a literal. #}
{% macro marts_tenant_ids(tenant_ids) -%}
    {%- for tenant_id in tenant_ids -%}
        {%- if not (tenant_id is string and modules.re.fullmatch('[a-z0-9][a-z0-9_]{0,47}', tenant_id)) -%}
            {{ exceptions.raise_compiler_error('not a tenant id: ' ~ tenant_id) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(tenant_ids) }}
{%- endmacro %}

{#
    Pre-hook of the incremental marts: delete the rows the run is about to rebuild, so a date (or
    currency, or dimension value) that no longer has data does not keep a stale row. Windowed runs
    delete the window; a run without the window replaces every row. Runs in the insert's
    transaction.
#}
{% macro marts_delete_rebuilt_rows(date_column='date', monthly=false) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        {%- if marts_window() %}
        where {{ marts_in_window(date_column, monthly=monthly) }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#
    The `indexes` config of a mart read one tenant at a time, on Postgres only (without one such a
    read scans every tenant's rows); on DuckDB an ART index did not make the read faster
    (docs/decisions.md). dbt creates the indexes with the table: an incremental mart built before
    they were declared gets them on a --full-refresh.
#}
{% macro marts_postgres_indexes(indexes) -%}
    {{ return(indexes if target.type == 'postgres' else []) }}
{%- endmacro %}

{# Decimal hours from one timestamptz to a later one, numeric(38,4); NULL if either is NULL. #}
{% macro marts_hours_between(start_column, end_column) -%}
    {{ marts_round_double(
        'extract(epoch from (' ~ end_column ~ ' - ' ~ start_column ~ ')) / 3600.0', 4
    ) }}
{%- endmacro %}
