{#
    The marts' post-hook: re-apply the web app's row-level-security policy and grant to the
    table dbt just built (a rebuild drops them). It calls web.protect_table, which
    `tenantpulse web setup-roles` creates (platform/tenantpulse/web/roles.py, docs/web.md);
    before that, and on DuckDB, it does nothing.
#}
{% macro web_protect_table() %}
    {%- if target.type == 'postgres' -%}
do $web_protect$
begin
    if to_regprocedure('web.protect_table(regclass)') is not null then
        perform web.protect_table('{{ this }}'::regclass);
    end if;
end
$web_protect$
    {%- endif -%}
{% endmacro %}
