-- Alerts by kind: how many, for how many symbols and accounts, the strongest, the latest.
SELECT kind,
       count(*)                          AS alerts,
       count(DISTINCT symbol)            AS symbols,
       count(DISTINCT account)           AS accounts,
       max(score)                        AS max_score,
       to_timestamp(max(event_ms) / 1000.0) AS latest_at,
       sum(CASE WHEN severity = 'high' THEN 1 ELSE 0 END) AS high
FROM alerts
GROUP BY kind
ORDER BY alerts DESC;
