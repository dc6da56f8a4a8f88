-- Rejected records by reason and source, with the time span they were received in and one
-- example of each (the raw record as text).
SELECT source, reason, count(*) AS records,
       to_timestamp(min(received_ms) / 1000.0) AS first_at,
       to_timestamp(max(received_ms) / 1000.0) AS last_at,
       (array_agg(encode(raw, 'escape') ORDER BY partition, "offset"))[1] AS example
FROM rejects
GROUP BY source, reason
ORDER BY records DESC, source, reason;
