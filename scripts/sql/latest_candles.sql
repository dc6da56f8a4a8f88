-- The latest closed 1-minute candle of every symbol, with human-readable times.
-- Uses the primary key (symbol, window_ms, start_ms): one index probe per symbol.
SELECT DISTINCT ON (symbol)
       symbol, to_timestamp(start_ms / 1000.0) AS start_at, open, high, low, close, volume, vwap, trades
FROM candles
WHERE window_ms = 60000
ORDER BY symbol, start_ms DESC;
