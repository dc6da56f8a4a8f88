//! Files as sources: JSON lines or CSV, plain or gzip, or standard input.
//!
//! ```text
//!  regular file ──mmap──▶ chunk 0 │ chunk 1 │ chunk 2 │ …   chunk k → worker k mod W
//!  stdin / .gz  ──stream──▶ one partition, read by worker 0 of process 0
//! ```
//!
//! A regular file is cut into chunks at line boundaries; the chunk size depends only on the
//! file's size, so the chunks — and with them which records are late, since every chunk is
//! a partition with its own watermark — are the same whatever the number of workers and
//! processes. Chunks are dealt round-robin, so all workers advance through event time
//! together and open windows stay few. Offsets are byte offsets into the file (or into the
//! decompressed stream). Reading never fails half-way silently: an I/O error ends the run
//! with the path and offset.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    Stream,
    Empty,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Mapped(_, chunks) => write!(f, "Mapped({} chunks)", chunks.len()),
            Body::Stream => f.write_str("Stream"),
            Body::Empty => f.write_str("Empty"),
        }
    }
}

impl FileSource {
    /// Opens `path` (`-` for standard input) and detects its format from its name and first
    /// line; `symbol` names the pair of a Binance CSV whose file name does not.
    pub fn open(path: &str, symbol: Option<crate::model::Symbol>) -> Result<FileSource, FileError> {
        let io = |source| FileError::Io {
            path: path.to_owned(),
            source,
        };
        let gz = path.ends_with(".gz");
        if path == "-" || gz {
            // The first line is needed to detect the format; for a stream it is read again
            // by the partition, so open a second reader here (stdin: peek via the buffer).
            let first = if path == "-" {
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                let buffer = lock.fill_buf().map_err(io)?;
                first_line(buffer).to_vec()
            } else {
                let mut reader = BufReader::new(flate2::read::MultiGzDecoder::new(
                    File::open(path).map_err(io)?,
                ));
                let mut line = Vec::new();
                reader
                    .by_ref()
                    .take(MAX_RAW as u64)
                    .read_until(b'\n', &mut line)
                    .map_err(io)?;
                line
            };
            let format =
                detect_format(path, trim_line(&first), symbol).map_err(FileError::Format)?;
            return Ok(FileSource {
                path: path.to_owned(),
                format,
                body: Body::Stream,
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

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the partitions can be resumed at an offset (a mapped file can; standard input
    /// and gzip are read as a stream).
    pub fn seekable(&self) -> bool {
        !matches!(self.body, Body::Stream)
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
            Body::Stream if worker == 0 => vec![FilePartition::Stream(StreamPart::new(&self.path))],
            Body::Stream | Body::Empty => Vec::new(),
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

fn first_line(buffer: &[u8]) -> &[u8] {
    memchr::memchr(b'\n', buffer).map_or(buffer, |i| &buffer[..i])
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
}

/// Standard input or a gzip file, read line by line.
pub struct StreamPart {
    path: PathBuf,
    reader: Option<Box<dyn BufRead>>,
    line: Vec<u8>,
    offset: u64,
    error: Option<String>,
}

impl std::fmt::Debug for StreamPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamPart({}@{})", self.path.display(), self.offset)
    }
}

impl StreamPart {
    fn new(path: &str) -> StreamPart {
        StreamPart {
            path: PathBuf::from(path),
            reader: None,
            line: Vec::new(),
            offset: 0,
            error: None,
        }
    }

    fn open(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
        const BUFFER: usize = 1 << 20;
        if path == Path::new("-") {
            return Ok(Box::new(BufReader::with_capacity(BUFFER, std::io::stdin())));
        }
        let file = File::open(path)?;
        Ok(Box::new(BufReader::with_capacity(
            BUFFER,
            flate2::read::MultiGzDecoder::new(file),
        )))
    }

    fn poll(&mut self, budget: usize, emit: &mut dyn FnMut(Item<'_>)) -> Poll {
        if self.reader.is_none() {
            match StreamPart::open(&self.path) {
                Ok(reader) => self.reader = Some(reader),
                Err(error) => {
                    self.error = Some(format!("{}: {error}", self.path.display()));
                    return Poll::Finished;
                }
            }
        }
        let Some(reader) = self.reader.as_mut() else {
            return Poll::Finished;
        };
        for _ in 0..budget {
            self.line.clear();
            match read_bounded_line(reader, &mut self.line) {
                Ok(0) => return Poll::Finished,
                Ok(consumed) => {
                    let line = trim_line(&self.line);
                    let full_len = if consumed > MAX_RAW {
                        consumed
                    } else {
                        line.len()
                    };
                    emit(Item::Line {
                        offset: self.offset,
                        bytes: line,
                        full_len,
                    });
                    self.offset += consumed as u64;
                }
                Err(error) => {
                    self.error = Some(format!(
                        "{} at byte {}: {error}",
                        self.path.display(),
                        self.offset
                    ));
                    return Poll::Finished;
                }
            }
        }
        Poll::Ready
    }
}

/// Reads one line, keeping at most [`MAX_RAW`] bytes of it; returns the bytes consumed
/// (including the terminator), 0 at the end.
fn read_bounded_line(reader: &mut Box<dyn BufRead>, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buffer = reader.fill_buf()?;
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
