{#
    A run over the tenants whose landing tables changed (`changed_tenants_only` in its window,
    platform/tenantpulse/transform/windows.py): its tenants are the rows of ops.dbt_run_tenants
    for the run, read where a model runs, as a subquery or as literals checked to be tenant ids.
    Every other run covers every tenant.

    A model configured with `follows_day_analysed=false` says that its rows of a tenant follow
    that tenant's own inputs only (its own first and last day of activity, not the day analysed,
    the newest day of any tenant): its tenants are the marked ones alone, without those whose day
    spine moved, and it stays in place when the run widens to every tenant (run_scope_widened).
#}
{% macro run_scope(window=none) -%}
    {#- `window`: the run's window when the caller has read it already (one query less). -#}
    {%- set window = window or run_window() -%}
    {%- if not window or not window.changed_tenants_only -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(window.run_id if own_inputs_only() or not window.widened else none) }}
{%- endmacro %}

{# True in a model configured with follows_day_analysed=false (above). #}
{% macro own_inputs_only() -%}
    {{ return(model.resource_type == 'model' and config.get('follows_day_analysed', true) is false) }}
{%- endmacro %}

{# The run's tenants as a query of one column, tenant_id; none in a run over every tenant. #}
{% macro run_tenants_query(window=none) -%}
    {%- set run_id = run_scope(window) -%}
    {%- if not run_id -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set marked = ' and spine_moved is not true' if own_inputs_only() else '' -%}
    {{ return("select tenant_id from ops.dbt_run_tenants where run_id = '" ~ run_id ~ "'" ~ marked) }}
{%- endmacro %}

{# The run's tenants as SQL literals ('a', 'b', in tenant_id order), each checked to be a tenant
   id; '' when the run has none, none in a run over every tenant. #}
{% macro run_tenants_literals(window=none) -%}
    {%- set tenants = run_tenants_query(window) -%}
    {%- if not tenants -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set quoted = [] -%}
    {%- for tenant_id in marts_tenant_ids(run_query(tenants).columns[0].values() | unique | sort) -%}
        {%- do quoted.append("'" ~ tenant_id ~ "'") -%}
    {%- endfor -%}
    {{ return(quoted | join(', ')) }}
{%- endmacro %}

{# True for a row of one of the run's tenants; always true in a run over every tenant. The tenants
   are read when the model compiles, just before it runs (so those whose spine moved are in), and
   written as a list of literals: a list is a filter DuckDB applies where it reads a table, a
   subquery a join after it has computed every row. #}
{% macro in_run_tenants(tenant_column='tenant_id', window=none) -%}
    {%- set literals = run_tenants_literals(window) -%}
    {%- if literals is none -%}
        true
    {%- elif literals -%}
        {{ tenant_column }} in ({{ literals }})
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}

{#
    Hooks of int_tenant_days_spined in a run over some tenants. A tenant's spine runs to the newest
    day of any tenant when it synced since (int_tenant_days_spined.sql), so a tenant outside the
    run can see its spine grow when another tenant's data reaches a new day. Before the rebuild,
    each tenant's first and last day are kept; after it, every tenant whose first or last day
    moved joins the run's tenants (`spine_moved`), so each later model rebuilds it too, and is
    marked for a build as a land run marks a tenant (run_spines_marked): if the run stops before
    its last model, or covers some models only, the next run still rebuilds it (the spine it
    compares with has moved already). A run that succeeds clears the marks it made.
#}
{% macro run_spines_before() -%}
    {%- set run_id = run_scope() -%}
    {%- if run_id and load_cached_relation(this) is not none -%}
        insert into ops.dbt_run_spines (run_id, tenant_id, first_date, through_date)
        select '{{ run_id }}', tenant_id, min(date), max(date)
        from {{ this }}
        group by tenant_id
    {%- endif -%}
{%- endmacro %}

{% macro run_spines_moved() -%}
    {%- set run_id = run_scope() -%}
    {%- if run_id -%}
        insert into ops.dbt_run_tenants (run_id, tenant_id, marked_at, spine_moved)
        select '{{ run_id }}', coalesce(after.tenant_id, before.tenant_id), current_timestamp, true
        from (
            select tenant_id, min(date) as first_date, max(date) as through_date
            from {{ this }}
            group by tenant_id
        ) as after
        full outer join (
            select tenant_id, first_date, through_date
            from ops.dbt_run_spines
            where run_id = '{{ run_id }}'
        ) as before
            on after.tenant_id = before.tenant_id
        where (after.first_date is distinct from before.first_date
                or after.through_date is distinct from before.through_date)
            and coalesce(after.tenant_id, before.tenant_id) not in ({{ run_tenants_query() }})
    {%- endif -%}
{%- endmacro %}

{% macro run_spines_marked() -%}
    {%- set run_id = run_scope() -%}
    {%- if run_id -%}
        insert into ops.dbt_pending_tenants (tenant_id, marked_at)
        select tenant_id, marked_at
        from ops.dbt_run_tenants
        where run_id = '{{ run_id }}' and spine_moved
    {%- endif -%}
{%- endmacro %}

{#
    Post-hook of int_tenant_days_spined, after run_spines_moved: when the run's tenants are now
    more than half of the tenants with a spine (the day's first batch, whose new day moves every
    tenant's spine), the rest of the run covers every tenant (but for the models whose rows follow
    their tenant's own inputs only, which keep to the marked tenants). For most tenants, rebuilding their
    rows in place costs more than rebuilding the tables, and a list of their ids as literals more
    than no filter (1,000 tenants, all in the scope: revenue_analytics 5.5 s in place against
    2.2 s whole, developer_activity_monthly 3.7 s against 0.6-1.0 s); both are correct for any
    superset of the scope. The models run before kept to the scope: their rows do not depend on
    the spine.
#}
{% macro run_scope_widened() -%}
    {%- set run_id = run_scope() -%}
    {%- if run_id -%}
        update ops.dbt_run_window set widened = true
        where run_id = '{{ run_id }}'
            and 2 * (
                select count(distinct tenant_id) from ops.dbt_run_tenants
                where run_id = '{{ run_id }}'
            ) > (select count(distinct tenant_id) from {{ this }})
    {%- endif -%}
{%- endmacro %}

{#
    The model's own table, whose rows of the tenants outside the run it keeps, in a run over the
    tenants that changed: those tenants' inputs did not change since the table was built (a
    tenant stays marked until a run over it succeeds). None in any other run, on a full refresh,
    or when the table is missing or lacks one of `columns` (the model changed since): every
    tenant is then built from its inputs. For the models rebuilt whole in every run otherwise
    (the day spine, the days with a sync), so that a batch reads the batch's inputs only.
#}
{% macro kept_outside_run(columns) -%}
    {%- if not execute or flags.FULL_REFRESH or not run_scope() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- if existing is none or existing.type != 'table' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set present = adapter.get_columns_in_relation(existing) | map(attribute='name') | map('lower') | list -%}
    {%- for column in columns if column not in present -%}
        {{ return(none) }}
    {%- endfor -%}
    {{ return(existing) }}
{%- endmacro %}
