//! Files as sources: JSON lines or CSV, plain or gzip, or standard input.
//!
//! ```text
//!  regular file ──mmap──▶ chunk 0 │ chunk 1 │ chunk 2 │ …   chunk k → worker k mod W
//!  stdin / .gz  ──reader thread──bounded channel──▶ one partition, read by worker 0
//! ```
//!
//! A regular file is cut into chunks at line boundaries; the chunk size depends only on the
//! file's size, so the chunks — and with them which records are late, since every chunk is
//! a partition with its own watermark — are the same whatever the number of workers and
//! processes. Chunks are dealt round-robin, so all workers advance through event time
//! together and open windows stay few. Offsets are byte offsets into the file (or into the
//! decompressed stream). Reading never fails half-way silently: an I/O error ends the run
//! with the path and offset.
//!
//! Standard input and gzip files are read by a thread of their own into batches of lines
//! behind a bounded channel, so a worker never blocks on a read: a quiet pipe does not stop
//! windows from closing (after `idle_timeout` the partition is idle) or a Ctrl-C from ending
//! the run, and memory is bounded by the channel, not by how fast the input comes.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memmap2::Mmap;

use crate::parse::{detect_format, Format, Record};
use crate::source::{Item, Partition, Poll, MAX_RAW};

/// Why a file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening, mapping or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The format could not be recognised.
    #[error("{0}")]
    Format(String),
    /// Stopped (Ctrl-C) while waiting for the first line of a stream.
    #[error("{0}: stopped before any input arrived")]
    Interrupted(String),
}

/// Smallest and largest chunk, bytes.
const MIN_CHUNK: u64 = 64 << 10;
const MAX_CHUNK: u64 = 32 << 20;

/// An opened input file and its format.
#[derive(Debug)]
pub struct FileSource {
    path: String,
    format: Format,
    body: Body,
}

enum Body {
    /// A regular file and its chunk boundaries.
    Mapped(Arc<File>, Vec<(usize, usize)>),
    /// Standard input or a gzip file: the batches of its reader thread, until worker 0 takes
    /// them, and how long a quiet stream waits before it is idle.
    Stream(Mutex<Option<Receiver<Batch>>>, Duration),
    Empty,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Mapped(_, chunks) => write!(f, "Mapped({} chunks)", chunks.len()),
            Body::Stream(..) => f.write_str("Stream"),
            Body::Empty => f.write_str("Empty"),
        }
    }
}

impl FileSource {
    /// Opens `path` (`-` for standard input) and detects its format from its name and first
    /// line; `symbol` names the pair of a Binance CSV whose file name does not.
    pub fn open(path: &str, symbol: Option<crate::model::Symbol>) -> Result<FileSource, FileError> {
        FileSource::open_with(
            path,
            symbol,
            &Arc::new(AtomicBool::new(false)),
            Duration::from_secs(5),
        )
    }

    /// [`FileSource::open`], for a run: a stream waiting for its first line gives up when
    /// `shutdown` is set, and is idle after `idle_timeout` without data.
    pub fn open_with(
        path: &str,
        symbol: Option<crate::model::Symbol>,
        shutdown: &Arc<AtomicBool>,
        idle_timeout: Duration,
    ) -> Result<FileSource, FileError> {
        let io = |source| FileError::Io {
            path: path.to_owned(),
            source,
        };
        let gz = path.ends_with(".gz");
        if path == "-" || gz {
            let input: Box<dyn Read + Send> = if path == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(flate2::read::MultiGzDecoder::new(
                    File::open(path).map_err(io)?,
                ))
            };
            let reader = BufReader::with_capacity(STREAM_BUFFER, input);
            let (batches, first) = spawn_reader(path, reader).map_err(io)?;
            // The format comes from the first non-blank line; it is also in the batches.
            let first = loop {
                match first.recv_timeout(Duration::from_millis(50)) {
                    Ok(line) => break line,
                    // The stream ended (or failed; the batches say how) before such a line.
                    Err(RecvTimeoutError::Disconnected) => break Vec::new(),
                    Err(RecvTimeoutError::Timeout) if shutdown.load(Ordering::Relaxed) => {
                        return Err(FileError::Interrupted(path.to_owned()));
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                }
            };
            let format =
                detect_format(path, trim_line(&first), symbol).map_err(FileError::Format)?;
            return Ok(FileSource {
                path: path.to_owned(),
                format,
                body: Body::Stream(Mutex::new(Some(batches)), idle_timeout),
            });
        }
        let file = File::open(path).map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        if metadata.len() == 0 {
            return Ok(FileSource {
                path: path.to_owned(),
                format: Format::BinanceJson,
                body: Body::Empty,
            });
        }
        // The first line and the chunk boundaries are found with small reads, not through a
        // map of the whole file: touching a mapping maps whole page-cache folios, which
        // would make every chunk resident at once.
        let len = metadata.len() as usize;
        let head = read_at(&file, 0, 64 << 10).map_err(io)?;
        let first = head
            .split(|&b| b == b'\n')
            .map(trim_line)
            .find(|line| !line.iter().all(u8::is_ascii_whitespace))
            .unwrap_or(&[]);
        let format = detect_format(path, first, symbol).map_err(FileError::Format)?;
        let chunks = chunk_bounds(len, |at| next_line_start(&file, at)).map_err(io)?;
        Ok(FileSource {
            path: path.to_owned(),
            format,
            body: Body::Mapped(Arc::new(file), chunks),
        })
    }

    /// What identifies the file's contents for a restart: its size and a hash of its first
    /// and last 64 KiB (a stream has nothing to compare: it is never resumed).
    pub fn identity(&self) -> Vec<(&'static str, String)> {
        const SPAN: usize = 64 << 10;
        let Body::Mapped(file, chunks) = &self.body else {
            return Vec::new();
        };
        let len = chunks.last().map_or(0, |&(_, end)| end);
        let hash = |from: usize| {
            read_at(file, from, SPAN).map_or_else(
                |e| format!("unreadable: {e}"),
                |bytes| format!("{:016x}", crate::hash::stable_hash(&bytes)),
            )
        };
        vec![
            ("file.size", len.to_string()),
            ("file.head", hash(0)),
            ("file.tail", hash(len.saturating_sub(SPAN))),
        ]
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the partitions can be resumed at an offset (a mapped file can; standard input
    /// and gzip are read as a stream).
    pub fn seekable(&self) -> bool {
        !matches!(self.body, Body::Stream(..))
    }

    /// The partitions of the file owned by global worker `worker` of `workers`.
    pub fn partitions(&self, worker: usize, workers: usize) -> Vec<FilePartition> {
        match &self.body {
            Body::Mapped(file, chunks) => chunks
                .iter()
                .enumerate()
                .filter(|(index, _)| index % workers == worker)
                .map(|(index, &(start, end))| {
                    FilePartition::Chunk(Chunk {
                        file: Arc::clone(file),
                        path: self.path.clone(),
                        map: None,
                        index: index as u32,
                        start,
                        end,
                        pos: start,
                        format: self.format,
                        error: None,
                    })
                })
                .collect(),
            Body::Stream(batches, idle_timeout) if worker == 0 => batches
                .lock()
                .ok()
                .and_then(|mut b| b.take())
                .map(|batches| {
                    FilePartition::Stream(StreamPart::new(&self.path, batches, *idle_timeout))
                })
                .into_iter()
                .collect(),
            Body::Stream(..) | Body::Empty => Vec::new(),
        }
    }
}

/// Read-only memory map of `len` bytes of a file from `offset`: the parsers borrow lines
/// straight from the page cache, with no copy and no per-line allocation.
#[allow(unsafe_code)]
fn map_range(file: &File, offset: usize, len: usize) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this process. Another process truncating
    // or rewriting the input while it is read is outside what an input file may do (as for
    // any reader of a file being rewritten); tickflow never writes its inputs.
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset as u64)
            .len(len)
            .map(file)
    }
}

/// Chunk boundaries `[start, end)` at line starts; the chunk size depends on the length only.
/// `line_start(at)` is the start of the first line beginning at or after `at`.
fn chunk_bounds(
    len: usize,
    mut line_start: impl FnMut(usize) -> std::io::Result<usize>,
) -> std::io::Result<Vec<(usize, usize)>> {
    let size = (len as u64 / 64).clamp(MIN_CHUNK, MAX_CHUNK) as usize;
    let mut bounds = Vec::new();
    let mut start = 0;
    while start < len {
        let at = (start + size).min(len);
        let end = if at >= len { len } else { line_start(at)? };
        let end = end.max(start + 1).min(len);
        bounds.push((start, end));
        start = end;
    }
    Ok(bounds)
}

/// Start of the first line beginning at or after `at` (> 0) in `file`, or its length.
fn next_line_start(file: &File, at: usize) -> std::io::Result<usize> {
    let mut from = at - 1;
    loop {
        let block = read_at(file, from, 64 << 10)?;
        if block.is_empty() {
            return Ok(from);
        }
        if let Some(i) = memchr::memchr(b'\n', &block) {
            return Ok(from + i + 1);
        }
        from += block.len();
    }
}

/// Up to `len` bytes of `file` from `offset` (fewer at the end).
fn read_at(file: &File, offset: usize, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buffer = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buffer[filled..], (offset + filled) as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

/// A line without its `\n` / `\r\n` terminator.
#[inline]
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A partition of a file.
#[derive(Debug)]
pub enum FilePartition {
    /// A chunk of a mapped file.
    Chunk(Chunk),
    /// The whole of a stream.
    Stream(StreamPart),
}

/// A line-aligned byte range of a file, mapped while it is being read.
pub struct Chunk {
    file: Arc<File>,
    path: String,
    /// The range `[start, end)`; `None` before the first read and after the last.
    map: Option<Mmap>,
    index: u32,
    start: usize,
    end: usize,
    pos: usize,
    format: Format,
    error: Option<String>,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunk({}: {}..{})", self.index, self.start, self.end)
    }
}

impl Chunk {
    /// Resumes the chunk at byte `offset` of the file.
    pub fn seek(&mut self, offset: u64) {
        self.pos = (offset as usize).clamp(self.start, self.end);
    }

    /// The chunk's bytes, mapping them on first use.
    fn bytes(&mut self) -> Option<&[u8]> {
        if self.map.is_none() && self.error.is_none() {
            match map_range(&self.file, self.start, self.end - self.start) {
                Ok(map) => self.map = Some(map),
                Err(e) => {
                    self.error = Some(format!("{} at byte {}: {e}", self.path, self.start));
                }
            }
        }
        self.map.as_deref()
    }
}

impl FilePartition {
    /// Resumes at byte `offset` of the file (chunks only; a stream cannot seek).
    pub fn seek(&mut self, offset: u64) {
        if let FilePartition::Chunk(chunk) = self {
            chunk.seek(offset);
        }
    }
}

impl Partition for FilePartition {
    fn index(&self) -> u32 {
        match self {
            FilePartition::Chunk(chunk) => chunk.index,
            FilePartition::Stream(_) => 0,
        }
    }

    fn first_time(&mut self) -> Option<u64> {
        let FilePartition::Chunk(chunk) = self else {
            return None;
        };
        let format = chunk.format;
        let first_trade = |body: &[u8], complete: bool| {
            let mut lines = body.split(|&b| b == b'\n').peekable();
            let mut found = None;
            while let Some(line) = lines.next() {
                // The last piece of an incomplete prefix may be a cut line.
                if !complete && lines.peek().is_none() {
                    break;
                }
                match format.parse_line(trim_line(line)) {
                    Ok(Record::Trade(trade)) => found = Some(trade.time_ms),
                    Ok(Record::Candle(candle)) => found = Some(candle.start_ms),
                    _ => {}
                }
                if found.is_some() {
                    break;
                }
            }
            found
        };
        // Usually the first line tells; read it without mapping the chunk (see `open`).
        let want = (chunk.end - chunk.pos).min(256 << 10);
        if let Ok(prefix) = read_at(&chunk.file, chunk.pos, want) {
            if let Some(time) = first_trade(&prefix, want == chunk.end - chunk.pos) {
                return Some(time);
            }
        }
        let from = chunk.pos - chunk.start;
        let time = first_trade(&chunk.bytes()?[from..], true);
        Some(time.unwrap_or(u64::MAX))
    }

    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        match self {
            FilePartition::Chunk(chunk) => {
                let base = chunk.start;
                let mut pos = chunk.pos - base;
                let Some(data) = chunk.bytes() else {
                    return Poll::Finished;
                };
                for _ in 0..budget {
                    if pos >= data.len() {
                        break;
                    }
                    let stop = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i);
                    let line = trim_line(&data[pos..stop]);
                    emit(Item::Line {
                        offset: (base + pos) as u64,
                        bytes: &line[..line.len().min(MAX_RAW)],
                        full_len: line.len(),
                    });
                    pos = stop + 1;
                }
                chunk.pos = (base + pos).min(chunk.end);
                if chunk.pos >= chunk.end {
                    // Done: unmapping returns the chunk's pages (they stay in the page cache).
                    chunk.map = None;
                    Poll::Finished
                } else {
                    Poll::Ready
                }
            }
            FilePartition::Stream(stream) => stream.poll(budget, emit),
        }
    }

    fn position(&self) -> u64 {
        match self {
            FilePartition::Chunk(chunk) => chunk.pos as u64,
            FilePartition::Stream(stream) => stream.offset,
        }
    }

    fn error(&self) -> Option<String> {
        match self {
            FilePartition::Chunk(chunk) => chunk.error.clone(),
            FilePartition::Stream(stream) => stream.error.clone(),
        }
    }

    fn idle(&self) -> bool {
        match self {
            FilePartition::Chunk(_) => false,
            FilePartition::Stream(stream) => stream.idle(),
        }
    }

    fn idle_follows_wall_clock(&self) -> bool {
        // A pipe may carry old data as well as a live feed: while quiet it closes the windows
        // of what it has sent, without jumping to the wall clock.
        false
    }
}

/// Bytes of the read buffer of a stream.
const STREAM_BUFFER: usize = 1 << 20;
/// Batches a stream's reader thread may have ready ahead of the worker (each holds about one
/// read buffer of lines, or one long line of up to [`MAX_RAW`] bytes kept).
const STREAM_BATCHES: usize = 8;

/// Lines of a stream as its reader thread hands them over: the bytes, and for each line its
/// offset, its range in the bytes, its true length (when cut at [`MAX_RAW`]) and the offset
/// of the line after it.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: Vec<(u64, usize, usize, usize, u64)>,
    /// Set on the last batch of a stream that failed: why, and at which offset.
    error: Option<String>,
}

/// Starts the thread that reads `reader` line by line into batches. Returns the batches
/// (closed at the end of the stream) and, once, the first non-blank line (for the format).
fn spawn_reader(
    path: &str,
    mut reader: BufReader<Box<dyn Read + Send>>,
) -> std::io::Result<(Receiver<Batch>, Receiver<Vec<u8>>)> {
    let (send, batches) = std::sync::mpsc::sync_channel::<Batch>(STREAM_BATCHES);
    let (first_send, first) = std::sync::mpsc::channel();
    let shown = if path == "-" {
        "standard input".to_owned()
    } else {
        path.to_owned()
    };
    std::thread::Builder::new()
        .name("tickflow-stream".into())
        .spawn(move || read_batches(&shown, &mut reader, &send, Some(first_send)))?;
    Ok((batches, first))
}

/// The reader thread: batches as much as is buffered (a live pipe's lines go out as they
/// come; a fast one fills whole batches), blocking only on its own reads and sends.
fn read_batches(
    shown: &str,
    reader: &mut BufReader<Box<dyn Read + Send>>,
    send: &SyncSender<Batch>,
    mut first: Option<std::sync::mpsc::Sender<Vec<u8>>>,
) {
    let mut offset = 0u64;
    let mut line = Vec::new();
    let mut batch = Batch::default();
    loop {
        line.clear();
        match read_bounded_line(reader, &mut line) {
            Ok(0) => break,
            Ok(consumed) => {
                let text = trim_line(&line);
                if let Some(tell) = first.as_ref() {
                    if !text.iter().all(u8::is_ascii_whitespace) {
                        let _ = tell.send(text.to_vec());
                        first = None;
                    }
                }
                let full_len = if consumed > MAX_RAW {
                    consumed
                } else {
                    text.len()
                };
                let start = batch.bytes.len();
                batch.bytes.extend_from_slice(text);
                offset += consumed as u64;
                batch.lines.push((
                    offset - consumed as u64,
                    start,
                    batch.bytes.len(),
                    full_len,
                    offset,
                ));
                // Hand over what has been read when the next read would wait for input, or
                // when the batch is full.
                if (reader.buffer().is_empty() || batch.bytes.len() >= STREAM_BUFFER)
                    && send.send(std::mem::take(&mut batch)).is_err()
                {
                    return; // The run has ended.
                }
            }
            Err(error) => {
                batch.error = Some(format!("{shown} at byte {offset}: {error}"));
                break;
            }
        }
    }
    if !batch.lines.is_empty() || batch.error.is_some() {
        let _ = send.send(batch);
    }
}

/// Standard input or a gzip file, read by its own thread (see [`spawn_reader`]).
pub struct StreamPart {
    path: PathBuf,
    batches: Receiver<Batch>,
    /// The batch being emitted and the index of its next line.
    current: Option<(Batch, usize)>,
    offset: u64,
    error: Option<String>,
    idle_timeout: Duration,
    last_data: Instant,
}

impl std::fmt::Debug for StreamPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamPart({}@{})", self.path.display(), self.offset)
    }
}

impl StreamPart {
    fn new(path: &str, batches: Receiver<Batch>, idle_timeout: Duration) -> StreamPart {
        StreamPart {
            path: PathBuf::from(path),
            batches,
            current: None,
            offset: 0,
            error: None,
            idle_timeout,
            last_data: Instant::now(),
        }
    }

    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        let mut emitted = 0;
        while emitted < budget {
            if self.current.is_none() {
                match self.batches.try_recv() {
                    Ok(mut batch) => {
                        if let Some(error) = batch.error.take() {
                            self.error = Some(error);
                        }
                        self.current = Some((batch, 0));
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Poll::Finished,
                }
            }
            let Some((batch, next)) = self.current.as_mut() else {
                break;
            };
            while emitted < budget && *next < batch.lines.len() {
                let (offset, start, end, full_len, after) = batch.lines[*next];
                emit(Item::Line {
                    offset,
                    bytes: &batch.bytes[start..end],
                    full_len,
                });
                *next += 1;
                emitted += 1;
                self.offset = after;
            }
            if *next >= batch.lines.len() {
                self.current = None;
                if self.error.is_some() {
                    return Poll::Finished;
                }
            }
        }
        if emitted > 0 {
            self.last_data = Instant::now();
            Poll::Ready
        } else {
            Poll::Pending(Duration::from_millis(5))
        }
    }

    fn idle(&self) -> bool {
        self.current.is_none() && self.last_data.elapsed() >= self.idle_timeout
    }
}

/// Reads one line, keeping at most [`MAX_RAW`] bytes of it; returns the bytes consumed
/// (including the terminator), 0 at the end.
fn read_bounded_line(reader: &mut dyn BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match memchr::memchr(b'\n', buffer) {
            Some(i) => (i + 1, true),
            None => (buffer.len(), false),
        };
        let room = (MAX_RAW + 1).saturating_sub(line.len());
        line.extend_from_slice(&buffer[..take.min(room)]);
        reader.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_file_at_line_starts() {
        let mut data = Vec::new();
        for i in 0..20_000 {
            data.extend_from_slice(format!("line {i} with some padding text\n").as_bytes());
        }
        let in_memory = |data: &[u8]| {
            chunk_bounds(data.len(), |at| {
                Ok(memchr::memchr(b'\n', &data[at - 1..]).map_or(data.len(), |i| at + i))
            })
            .expect("in memory")
        };
        let bounds = in_memory(&data);
        assert!(bounds.len() > 1);
        assert_eq!(bounds[0].0, 0);
        assert_eq!(bounds.last().map(|b| b.1), Some(data.len()));
        for pair in bounds.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
            assert_eq!(data[pair[1].0 - 1], b'\n');
        }
        assert!(in_memory(&[]).is_empty());
        assert_eq!(in_memory(b"no newline"), vec![(0, 10)]);
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    #[test]
    fn a_finished_chunk_is_unmapped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.jsonl");
        let line =
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1700000000000,"m":true}"#;
        std::fs::write(&path, format!("{line}\n").repeat(5_000)).expect("write");
        let source = FileSource::open(path.to_str().expect("utf-8"), None).expect("opens");
        let mut parts = source.partitions(0, 1);
        assert!(parts.len() > 1);
        let mut lines = 0;
        for part in &mut parts {
            assert!(part.first_time().is_some());
            while part.poll(1000, &mut |_| lines += 1) == Poll::Ready {}
            let FilePartition::Chunk(chunk) = part else {
                panic!("a chunk")
            };
            assert!(chunk.map.is_none(), "chunk {} still mapped", chunk.index);
        }
        assert_eq!(lines, 5_000);
    }
}
