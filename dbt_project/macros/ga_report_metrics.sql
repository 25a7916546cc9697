{#
    The metrics the website_overview, traffic_sources and devices reports share, renamed to
    snake_case, with the ratios as numeric so both adapters keep the same digits.
#}
{% macro ga_report_metrics() -%}
        "totalUsers" as total_users,
        "newUsers" as new_users,
        sessions,
        cast("sessionsPerUser" as numeric(38, 9)) as sessions_per_user,
        cast("averageSessionDuration" as numeric(38, 9)) as average_session_duration_seconds,
        "screenPageViews" as page_views,
        cast("screenPageViewsPerSession" as numeric(38, 9)) as page_views_per_session,
        cast("bounceRate" as numeric(38, 9)) as bounce_rate,
{%- endmacro %}
