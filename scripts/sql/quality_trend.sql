-- Data-quality trend: per symbol and hour, what share of records were usable, and why not.
-- score = valid / (total + gap) over the hour, from the per-window counts.
SELECT symbol,
       to_timestamp((start_ms - start_ms % 3600000) / 1000.0)        AS hour_at,
       sum(total)                                                     AS records,
       sum(valid)                                                     AS valid,
       sum(duplicate)                                                 AS duplicates,
       sum(conflicting)                                               AS conflicting,
       sum(late)                                                      AS late,
       sum(malformed) + sum(invalid)                                  AS unusable,
       sum(gap)                                                       AS gaps,
       round(sum(valid)::numeric / greatest(sum(total) + sum(gap), 1), 6) AS score
FROM quality
GROUP BY symbol, start_ms - start_ms % 3600000
ORDER BY symbol, hour_at;
