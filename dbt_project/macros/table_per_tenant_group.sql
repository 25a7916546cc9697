{#
    A table built one group of tenants at a time: the model's query runs once per group of
    `tenants_per_group` tenants (in tenant_id order, from int_tenant_syncs_dated: every tenant with
    a landed row; not set: one group of every tenant), each run's rows inserted into the new table,
    which then replaces the old one as dbt's `table` does. A model whose query joins and
    aggregates every tenant's rows at once needs memory in proportion to all tenants
    (unified_customers ran out of DuckDB's 4 GB at 10,000 tenants); one group at a time it needs
    memory in proportion to a group.

    In a run over the tenants that changed (macros/run_tenants.sql), the groups are those tenants,
    and their rows replace theirs in the table in place; every other tenant's rows stay. When
    they are every tenant of the table, the new table replaces it instead. A model
    whose columns changed since its table was built is rebuilt for every tenant instead.

    The model filters each of its inputs with `in_tenant_group('tenant_id')`, and its rows are
    kept to the group's tenants; the group being built is a row set in the temporary table
    `<model>__tenant_group`, so the query compiles once for every group. In place on DuckDB, the
    inputs are also filtered by the run's tenants written as literals (see in_tenant_group).
#}
{% materialization table_per_tenant_group, default %}
    {%- set tenants_per_group = config.get('tenants_per_group') -%}
    {%- if tenants_per_group is not none and (tenants_per_group is not integer or tenants_per_group < 1) -%}
        {{ exceptions.raise_compiler_error('tenants_per_group must be a positive integer, not ' ~ tenants_per_group) }}
    {%- endif -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- set backup_relation = make_backup_relation(target_relation, 'table' if existing_relation is none else existing_relation.type) -%}
    {%- set every_tenant = 'select distinct tenant_id from ' ~ ref('int_tenant_syncs_dated') -%}
    {%- set run_tenants = run_tenants_query() -%}
    {%- set in_place = tenant_group_in_place() -%}
    {%- set literals = tenant_group_literals() -%}
    {%- set filtered = ' in (' ~ literals ~ ')' -%}
    {%- if literals and filtered not in sql -%}
        {{ exceptions.raise_compiler_error(this ~ ": its SQL does not filter its inputs by the run's tenants (in_tenant_group), or they changed after it compiled") }}
    {%- endif -%}
    {{ drop_relation_if_exists(load_cached_relation(intermediate_relation)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {{ tenant_groups_build(sql, intermediate_relation, run_tenants if in_place else every_tenant, tenants_per_group) }}
    {%- if in_place -%}
        {%- set built = adapter.get_columns_in_relation(intermediate_relation) | map(attribute='name') | list -%}
        {%- set kept = adapter.get_columns_in_relation(existing_relation) | map(attribute='name') | list -%}
        {%- if built != kept -%}
            {{ log(this ~ ': its columns changed, every tenant is rebuilt', info=true) }}
            {{ drop_relation_if_exists(intermediate_relation) }}
            {#- Each input filtered by the group alone, not by the run's tenants. -#}
            {%- set every_tenant_sql = sql | replace(filtered, ' in (select tenant_id from ' ~ tenant_group_relation() ~ ')') if literals else sql -%}
            {{ tenant_groups_build(every_tenant_sql, intermediate_relation, every_tenant, tenants_per_group) }}
            {%- set in_place = false -%}
        {%- endif -%}
    {%- endif -%}
    {%- if in_place and not tenant_rows_kept(existing_relation) -%}
        {#- The run rebuilt every tenant of the table (every sync finished at once): the new
            table replaces the old one, as in a full build, instead of each row being deleted
            and copied in again. -#}
        {%- set in_place = false -%}
    {%- endif -%}

    {%- if in_place %}
        {%- set columns = adapter.get_columns_in_relation(existing_relation) | map(attribute='quoted') | join(', ') -%}
        {% call statement('tenant_group') -%}
            delete from {{ existing_relation }}
            where tenant_id in (select tenant_id from {{ tenant_group_relation('__tenants') }})
        {%- endcall %}
        {% call statement('tenant_group') -%}
            insert into {{ existing_relation }} ({{ columns }})
            select {{ columns }} from {{ intermediate_relation }}
        {%- endcall %}
        {{ drop_relation_if_exists(intermediate_relation) }}
    {%- else %}
        {% do create_indexes(intermediate_relation) %}
        {% if existing_relation is not none %}
            {{ adapter.rename_relation(existing_relation, backup_relation) }}
        {% endif %}
        {{ adapter.rename_relation(intermediate_relation, target_relation) }}
    {%- endif %}
    {% call statement('tenant_group') -%}
        drop table {{ tenant_group_relation() }}
    {%- endcall %}
    {% call statement('tenant_group') -%}
        drop table {{ tenant_group_relation('__tenants') }}
    {%- endcall %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do persist_docs(target_relation, model) %}
    {{ adapter.commit() }}
    {{ drop_relation_if_exists(backup_relation) }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{# The rows of the model's query `sql` for the tenants `tenants_query` returns (one column, tenant_id), built into
   `relation` a group of `tenants_per_group` at a time (none: one group). The tenants stay in the
   temporary table `<model>__tenants`. #}
{% macro tenant_groups_build(sql, relation, tenants_query, tenants_per_group) -%}
    {%- set group_relation = tenant_group_relation() -%}
    {%- set tenants_relation = tenant_group_relation('__tenants') -%}
    {#- Every tenant numbered once, in tenant_id order; each group is a range of the numbers. -#}
    {% call statement('tenant_group') -%}
        drop table if exists {{ tenants_relation }}
    {%- endcall %}
    {% call statement('tenant_group') -%}
        create temporary table {{ tenants_relation }} as
        select tenant_id, row_number() over (order by tenant_id) - 1 as tenant_index
        from (select distinct tenant_id from ({{ tenants_query }}) as chosen) as tenants
    {%- endcall %}
    {%- set tenant_count = run_query('select count(*) from ' ~ tenants_relation).columns[0].values()[0] -%}
    {%- set tenants_per_group = tenants_per_group or [tenant_count, 1] | max -%}
    {%- set group_count = [((tenant_count + tenants_per_group - 1) // tenants_per_group) | int, 1] | max -%}
    {% call statement('tenant_group') -%}
        drop table if exists {{ group_relation }}
    {%- endcall %}
    {% call statement('tenant_group') -%}
        create temporary table {{ group_relation }} (tenant_id varchar)
    {%- endcall %}
    {#- The model's rows of the group's tenants only, whatever its inputs' filters let through. -#}
    {%- set group_sql -%}
        select * from (
            {{ sql }}
        ) as model_rows
        where tenant_id in (select tenant_id from {{ group_relation }})
    {%- endset -%}

    {%- for group in range(group_count) %}
        {% call statement('tenant_group') -%}
            delete from {{ group_relation }}
        {%- endcall %}
        {% call statement('tenant_group') -%}
            insert into {{ group_relation }}
            select tenant_id from {{ tenants_relation }}
            where tenant_index >= {{ group * tenants_per_group }}
                and tenant_index < {{ (group + 1) * tenants_per_group }}
        {%- endcall %}
        {%- if target.type == 'postgres' %}
            {#- Without statistics the planner guesses the group's size, and joins by it. -#}
            {% call statement('tenant_group') -%}
                analyze {{ group_relation }}
            {%- endcall %}
        {%- endif %}
        {% call statement('main' if loop.last else 'group') -%}
            {%- if loop.first -%}
                {{ get_create_table_as_sql(False, relation, group_sql) }}
            {%- else -%}
                {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='quoted') | join(', ') -%}
                insert into {{ relation }} ({{ columns }})
                select {{ columns }} from (
                    {{ group_sql }}
                ) as group_rows
            {%- endif -%}
        {%- endcall %}
        {#- The new rows are not the model's until renamed or moved: each group's rows are
            committed, so no transaction holds every tenant's uncommitted rows (DuckDB keeps them
            in memory). -#}
        {% do adapter.commit() %}
    {%- endfor %}
{%- endmacro %}

{# True when `relation` holds a row of a tenant the run did not rebuild (not in `<model>__tenants`). #}
{% macro tenant_rows_kept(relation) -%}
    {%- set kept -%}
        select 1 from {{ relation }} as existing
        where not exists (
            select 1 from {{ tenant_group_relation('__tenants') }} as rebuilt
            where rebuilt.tenant_id = existing.tenant_id
        )
        limit 1
    {%- endset -%}
    {{ return(run_query(kept).rows | length > 0) }}
{%- endmacro %}

{# A temporary table of the model's build: by default `<model>__tenant_group`, the tenants of
   the group being built. #}
{% macro tenant_group_relation(suffix='__tenant_group') -%}
    {{ return(api.Relation.create(identifier=this.identifier ~ suffix, type='table')) }}
{%- endmacro %}

{# True when this table_per_tenant_group model replaces the run's tenants' rows in its table: a run
   over the tenants that changed, with the table built before. #}
{% macro tenant_group_in_place() -%}
    {%- set existing = load_cached_relation(this) -%}
    {{ return(run_tenants_query() is not none and existing is not none and existing.type == 'table') }}
{%- endmacro %}

{# The run's tenants as literals (macros/run_tenants.sql) where in_tenant_group writes them: in
   place on DuckDB, with at least one tenant; else none. #}
{% macro tenant_group_literals() -%}
    {{ return(run_tenants_literals() or none if target.type == 'duckdb' and tenant_group_in_place() else none) }}
{%- endmacro %}

{# In a table_per_tenant_group model: the tenant is in the group being built; elsewhere, and when
   the one group is every tenant (no `tenants_per_group`, a run over every tenant), always true.
   The `in` of the group keeps the filter exact; DuckDB applies it after it has computed the
   input's rows (a join), so on DuckDB the filter also says which tenants as something it applies
   where it reads the table, before a staging view's columns are computed: in place, the run's
   tenants as literals (417 scattered tenants of 10,000: unified_customers 27-28 s with a range
   of every id, docs/decisions.md); otherwise the group's range of tenant ids (a group of the
   full build is a range: 10 groups at 10,000 tenants computed each view 10 times without it).
   The materialization checks that its SQL holds the literals of the tenants it replaces, and for
   a model whose columns changed rebuilds every tenant from the SQL with them taken out. Postgres
   gets neither: with the range's bounds unknown when it plans, Postgres takes a range for 0.5% of
   the rows and chose nested loops that scanned a whole landing table per outer row. #}
{% macro in_tenant_group(tenant_column) -%}
    {%- if config.get('materialized') == 'table_per_tenant_group'
            and (config.get('tenants_per_group') or run_tenants_query()) -%}
        {%- set group = tenant_group_relation() -%}
        {%- set literals = tenant_group_literals() -%}
        {%- if literals -%}
        {{ tenant_column }} in ({{ literals }})
        and {% elif target.type == 'duckdb' -%}
        {{ tenant_column }} between (select min(tenant_id) from {{ group }})
            and (select max(tenant_id) from {{ group }})
        and {% endif -%}
        {{ tenant_column }} in (select tenant_id from {{ group }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
