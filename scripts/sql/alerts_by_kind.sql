-- Alerts per kind and symbol: how many, how many of them high severity, the accounts named,
-- the span of event time they cover and the mean score (how far past the threshold).
SELECT kind, symbol,
       count(*)                                           AS alerts,
       count(*) FILTER (WHERE severity = 'high')          AS high,
       count(DISTINCT account)                            AS accounts,
       to_timestamp(min(event_ms) / 1000.0)               AS first_at,
       to_timestamp(max(event_ms) / 1000.0)               AS last_at,
       round(avg(score), 3)                               AS mean_score
FROM alerts
GROUP BY kind, symbol
ORDER BY kind, alerts DESC, symbol;
