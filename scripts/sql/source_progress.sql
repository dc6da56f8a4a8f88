-- Where every source partition stands: the next offset to read, whether it reached its end,
-- how far its event time got, and when the row was last committed.
SELECT o.source, o.partition, o.next_offset, o.finished,
       to_timestamp(o.max_event_ms / 1000.0) AS max_event_at,
       to_timestamp(o.updated_ms / 1000.0)   AS committed_at,
       to_timestamp(f.frontier_ms / 1000.0)  AS windows_committed_before
FROM source_offsets o
LEFT JOIN resume_frontier f USING (source)
ORDER BY o.source, o.partition;
