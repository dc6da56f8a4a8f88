-- Hourly VWAP rolled up exactly from 1-minute candles: Σ(p·q) / Σq over the hour's minutes.
-- (Averaging the minutes' VWAPs would weight every minute equally: wrong.)
SELECT symbol,
       to_timestamp((start_ms - start_ms % 3600000) / 1000.0) AS hour_at,
       sum(quote_volume) / sum(volume)                         AS vwap,
       sum(volume)                                             AS volume,
       sum(trades)                                             AS trades,
       count(*)                                                AS minutes
FROM candles
WHERE window_ms = 60000
GROUP BY symbol, start_ms - start_ms % 3600000
ORDER BY symbol, hour_at;
