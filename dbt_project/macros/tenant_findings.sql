{#
    The shape of every test about one tenant's data (docs/orchestration.md, "When one tenant's
    data is wrong"): `caller()` selects the offending rows, each with its tenant_id and an
    `example` (the offending value as text, or NULL). The test returns one row per tenant with
    the count of its offending rows and one example; it warns instead of failing the run, counts
    the offending rows (not the tenants) as its failures, and stores its rows in the schema
    `test_failures`, from where the dbt_views asset names the tenants in the check's metadata.
#}
{% macro tenant_findings() %}
{{ config(
    severity='warn',
    store_failures=true,
    schema='test_failures',
    fail_calc='coalesce(sum(offending_rows), 0)',
) }}
select tenant_id, count(*) as offending_rows, min(example) as example
from (
    {{ caller() }}
) offending
group by tenant_id
{% endmacro %}
