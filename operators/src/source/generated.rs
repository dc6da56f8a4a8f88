//! The market generator as a source: each symbol's stream is one partition.

use std::time::{Duration, Instant};

use crate::generator::SymbolStream;
use crate::model::Trade;
use crate::source::{Item, Partition, Poll};

/// One generated symbol stream, paced in real time unless it runs as fast as possible.
#[derive(Debug)]
pub struct GeneratedPartition {
    stream: SymbolStream,
    peeked: Option<(u64, Trade)>,
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

    fn peek(&mut self) -> Option<&(u64, Trade)> {
        if self.peeked.is_none() {
            self.peeked = self.stream.next();
        }
        self.peeked.as_ref()
    }
}

impl Partition for GeneratedPartition {
    fn index(&self) -> u32 {
        self.stream.index() as u32
    }

    fn first_time(&mut self) -> Option<u64> {
        Some(self.peek().map_or(u64::MAX, |(_, trade)| trade.time_ms))
    }

    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        for _ in 0..budget {
            let offset = self.position();
            let pace = self.pace;
            let Some(&(arrival, trade)) = self.peek() else {
                return Poll::Finished;
            };
            if let Some((start_ms, started)) = pace {
                let due = Duration::from_millis(arrival.saturating_sub(start_ms));
                let elapsed = started.elapsed();
                if due > elapsed {
                    return Poll::Pending(due - elapsed);
                }
            }
            self.peeked = None;
            emit(Item::Trade { offset, trade });
        }
        Poll::Ready
    }

    fn position(&self) -> u64 {
        // The peeked trade is not consumed yet.
        self.stream.position() - u64::from(self.peeked.is_some())
    }
}
