{#
    The money a Shopify order's `refunds` array gave back, in major units, numeric(38,4); 0 when
    there are none. Each refund holds `transactions`; a transaction counts when its kind is
    'refund' and its status 'success' (a missing kind or status counts: older API versions omit
    them). Amounts may be JSON numbers or strings ("91.35"): both are cast the same way.
#}
{% macro shopify_refunded_amount(refunds_column) -%}
    {{ return(adapter.dispatch('shopify_refunded_amount')(refunds_column)) }}
{%- endmacro %}

{# Most orders have no refund: their '[]' is not parsed. #}
{% macro duckdb__shopify_refunded_amount(refunds_column) -%}
    case when cast({{ refunds_column }} as varchar) = '[]' then cast(0 as numeric(38, 4)) else
    cast(coalesce(list_sum([
        cast(json_extract_string(refund_transaction, '$.amount') as numeric(38, 4))
        for refund_transaction in json_extract({{ refunds_column }}, '$[*].transactions[*]')
        if coalesce(json_extract_string(refund_transaction, '$.kind'), 'refund') = 'refund'
            and coalesce(json_extract_string(refund_transaction, '$.status'), 'success') = 'success'
    ]), 0) as numeric(38, 4)) end
{%- endmacro %}

{% macro postgres__shopify_refunded_amount(refunds_column) -%}
    cast(coalesce((
        select sum(cast(refund_transaction.value ->> 'amount' as numeric(38, 4)))
        from jsonb_array_elements(
            case
                when jsonb_typeof(cast({{ refunds_column }} as jsonb)) = 'array'
                    then cast({{ refunds_column }} as jsonb)
                else '[]'::jsonb
            end
        ) as refund (value)
        cross join lateral jsonb_array_elements(
            case
                when jsonb_typeof(refund.value -> 'transactions') = 'array'
                    then refund.value -> 'transactions'
                else '[]'::jsonb
            end
        ) as refund_transaction (value)
        where coalesce(refund_transaction.value ->> 'kind', 'refund') = 'refund'
            and coalesce(refund_transaction.value ->> 'status', 'success') = 'success'
    ), 0) as numeric(38, 4))
{%- endmacro %}
