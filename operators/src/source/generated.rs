//! The market generator as a source: each symbol's stream is one partition.

use std::time::{Duration, Instant};

use crate::generator::{Generated, SymbolStream};
use crate::source::{Item, Partition, Poll};

/// One generated symbol stream, paced in real time unless it runs as fast as possible.
///
/// Trades go out as [`Item::Trade`]; the raw lines of injected defects as [`Item::Line`], so
/// that the engine parses and rejects them exactly as it would a file's lines.
#[derive(Debug)]
pub struct GeneratedPartition {
    stream: SymbolStream,
    peeked: Option<(u64, Generated)>,
    /// `(start of event time, wall clock at that moment)` when paced.
    pace: Option<(u64, Instant)>,
}

impl GeneratedPartition {
    /// Wraps `stream`; with `paced`, a trade is released when the wall clock since `started`
    /// reaches its arrival time since `start_ms`.
    pub fn new(stream: SymbolStream, paced: bool, start_ms: u64, started: Instant) -> Self {
        GeneratedPartition {
            stream,
            peeked: None,
            pace: paced.then_some((start_ms, started)),
        }
    }

    fn peek(&mut self) -> Option<&(u64, Generated)> {
        if self.peeked.is_none() {
            self.peeked = self.stream.next_record();
        }
        self.peeked.as_ref()
    }
}

impl Partition for GeneratedPartition {
    fn index(&self) -> u32 {
        self.stream.index() as u32
    }

    fn first_time(&mut self) -> Option<u64> {
        // A stream starts with a trade, unless a broken line arrives first: then its arrival,
        // which is within the arrival delay of the first trade's time.
        Some(
            self.peek()
                .map_or(u64::MAX, |(arrival, record)| match record {
                    Generated::Trade(trade) => trade.time_ms,
                    Generated::Line(_) => *arrival,
                }),
        )
    }

    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        for _ in 0..budget {
            let offset = self.position();
            let pace = self.pace;
            let Some(&(arrival, _)) = self.peek() else {
                return Poll::Finished;
            };
            if let Some((start_ms, started)) = pace {
                let due = Duration::from_millis(arrival.saturating_sub(start_ms));
                let elapsed = started.elapsed();
                if due > elapsed {
                    return Poll::Pending(due - elapsed);
                }
            }
            match self.peeked.take() {
                Some((_, Generated::Trade(trade))) => emit(Item::Trade { offset, trade }),
                Some((_, Generated::Line(bytes))) => emit(Item::Line {
                    offset,
                    bytes: &bytes,
                    full_len: bytes.len(),
                }),
                None => return Poll::Finished,
            }
        }
        Poll::Ready
    }

    fn position(&self) -> u64 {
        // The peeked trade is not consumed yet.
        self.stream.position() - u64::from(self.peeked.is_some())
    }
}
