//! The on-disk store-and-forward buffer: reports wait here while the server is unreachable, bounded in size
//! (oldest whole segments dropped and counted), and are sent in order once the connection returns.

use std::collections::VecDeque;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Segments are at least this large, whatever the budget.
const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// What went wrong in the spool; every file error names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{path}: spool I/O failed: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a payload of {len} bytes exceeds the spool's limit of {max} bytes")]
    PayloadTooLarge { len: usize, max: u64 },
    #[error("a payload contains a newline; spool records must be single-line JSON")]
    NewlineInPayload,
    #[error("{path}: corrupt spool file: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// The persisted cursor: where the first unacknowledged record starts, and how many records were dropped.
#[derive(Debug, Default, Deserialize)]
struct Cursor {
    segment: u64,
    offset: u64,
    dropped: u64,
}

/// One segment file as the spool sees it.
#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Size of the file.
    bytes: u64,
    /// Records not yet acknowledged (in the oldest segment, those after the cursor).
    pending: u64,
}

/// A bounded on-disk queue of single-line payloads (see the module docs).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sync: bool,
    /// Oldest first; segments before the cursor's have been deleted.
    segments: VecDeque<Segment>,
    /// Byte offset of the first unacknowledged record in the oldest segment.
    front_offset: u64,
    next_seq: u64,
    dropped: u64,
    /// Records dropped since the last `peek`: they were a prefix of what it returned, so `ack` skips them.
    dropped_since_peek: u64,
}

impl Spool {
    /// Opens (or creates, mode 0700) the spool in `dir`, keeping at most `max_bytes` of records on disk.
    /// Recovers from a crash: partial trailing lines are cut away and the cursor file says what was sent.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        let cursor = read_cursor(dir)?;

        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();

        let mut segments = VecDeque::new();
        let mut front_offset = 0;
        for seq in seqs {
            let path = segment_path(dir, seq);
            if seq < cursor.segment {
                // Consumed or dropped, but the crash came before the file was deleted.
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            let mut data = fs::read(&path).map_err(io_err(&path))?;
            let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i.saturating_add(1));
            if complete < data.len() {
                data.truncate(complete);
                let file = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
                file.set_len(to_u64(complete)).map_err(io_err(&path))?;
                file.sync_all().map_err(io_err(&path))?;
            }
            let mut start = 0;
            if seq == cursor.segment && cursor.offset > 0 {
                start = usize::try_from(cursor.offset).unwrap_or(usize::MAX);
                let at_boundary = start.checked_sub(1).and_then(|i| data.get(i)) == Some(&b'\n');
                if !at_boundary {
                    let detail = format!("offset {} is not a record boundary of segment {seq}", cursor.offset);
                    return Err(SpoolError::Corrupt { path: dir.join(CURSOR_FILE), detail });
                }
                front_offset = cursor.offset;
            }
            let pending = data.get(start..).unwrap_or_default().iter().filter(|&&b| b == b'\n').count();
            segments.push_back(Segment { seq, bytes: to_u64(data.len()), pending: to_u64(pending) });
        }

        let next_seq = segments.back().map_or(1, |s| s.seq.saturating_add(1)).max(cursor.segment);
        let segment_bytes = (max_bytes / 8).max(MIN_SEGMENT_BYTES);
        Ok(Spool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes,
            sync: true,
            segments,
            front_offset,
            next_seq,
            dropped: cursor.dropped,
            dropped_since_peek: 0,
        })
    }

    /// Whether each `push` is fsynced before it returns (default `true`; the cursor is always fsynced).
    pub fn with_sync(mut self, sync: bool) -> Spool {
        self.sync = sync;
        self
    }

    /// Appends one payload (compact JSON, no newline, at most `max_bytes / 8` bytes). Makes room first by
    /// deleting the oldest segments, counting their unsent records as dropped.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        if payload.contains(&b'\n') {
            return Err(SpoolError::NewlineInPayload);
        }
        let max = self.max_bytes / 8;
        if to_u64(payload.len()) > max {
            return Err(SpoolError::PayloadTooLarge { len: payload.len(), max });
        }
        let line_len = to_u64(payload.len()).saturating_add(1);
        self.make_room(line_len)?;

        let rotate =
            self.segments.back().is_none_or(|s| s.bytes > 0 && s.bytes.saturating_add(line_len) > self.segment_bytes);
        if rotate {
            let seq = self.next_seq;
            self.next_seq = seq.saturating_add(1);
            let path = segment_path(&self.dir, seq);
            OpenOptions::new().create_new(true).write(true).mode(0o600).open(&path).map_err(io_err(&path))?;
            if self.sync {
                sync_dir(&self.dir)?;
            }
            self.segments.push_back(Segment { seq, bytes: 0, pending: 0 });
        }
        let Some(active) = self.segments.back_mut() else { return Ok(()) };
        let path = segment_path(&self.dir, active.seq);
        let mut file = OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?;
        if let Err(source) = file.write_all(&[payload, b"\n"].concat()) {
            // Cut a half-written line away so the next record does not join it.
            let _ = file.set_len(active.bytes);
            return Err(SpoolError::Io { path, source });
        }
        if self.sync {
            file.sync_data().map_err(io_err(&path))?;
        }
        active.bytes = active.bytes.saturating_add(line_len);
        active.pending = active.pending.saturating_add(1);
        Ok(())
    }

    /// The oldest `max` unsent payloads, in order, left in the spool until [`Spool::ack`].
    pub fn peek(&mut self, max: usize) -> Result<Vec<Vec<u8>>, SpoolError> {
        self.dropped_since_peek = 0;
        let mut out = Vec::new();
        let mut start = self.front_offset;
        for segment in &self.segments {
            if out.len() >= max {
                break;
            }
            let want = max.saturating_sub(out.len()).min(usize::try_from(segment.pending).unwrap_or(usize::MAX));
            let (records, _) = self.read_records(segment.seq, start, want)?;
            out.extend(records);
            start = 0;
        }
        Ok(out)
    }

    /// Marks the first `n` payloads of the last [`Spool::peek`] as delivered: persists the cursor, then deletes
    /// fully consumed segments. Peeked records dropped since are skipped; `n` beyond what is waiting acks all.
    pub fn ack(&mut self, n: usize) -> Result<(), SpoolError> {
        let skipped = self.dropped_since_peek.min(to_u64(n));
        self.dropped_since_peek = self.dropped_since_peek.saturating_sub(skipped);
        let mut remaining = to_u64(n).saturating_sub(skipped);
        let mut consumed = Vec::new();
        while remaining > 0 {
            let Some(front) = self.segments.front_mut() else { break };
            let take = remaining.min(front.pending);
            if take == front.pending {
                consumed.push(front.seq);
                self.segments.pop_front();
                self.front_offset = 0;
            } else {
                let count = usize::try_from(take).unwrap_or(usize::MAX);
                let (seq, start) = (front.seq, self.front_offset);
                let (_, end) = self.read_records(seq, start, count)?;
                self.front_offset = end;
                if let Some(front) = self.segments.front_mut() {
                    front.pending = front.pending.saturating_sub(take);
                }
            }
            remaining = remaining.saturating_sub(take);
        }
        self.write_cursor()?;
        self.remove_segments(&consumed)
    }

    /// Records waiting to be sent.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| s.pending).sum()
    }

    /// Whether nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Unsent records deleted to keep the spool within its budget, ever (persisted across restarts).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Deletes the oldest segments until `incoming` more bytes fit in the budget.
    fn make_room(&mut self, incoming: u64) -> Result<(), SpoolError> {
        let mut total: u64 = self.segments.iter().map(|s| s.bytes).sum();
        let mut removed = Vec::new();
        while total.saturating_add(incoming) > self.max_bytes {
            let Some(oldest) = self.segments.pop_front() else { break };
            total = total.saturating_sub(oldest.bytes);
            self.dropped = self.dropped.saturating_add(oldest.pending);
            self.dropped_since_peek = self.dropped_since_peek.saturating_add(oldest.pending);
            self.front_offset = 0;
            removed.push(oldest.seq);
        }
        if removed.is_empty() {
            return Ok(());
        }
        // Cursor first: a crash before the deletes leaves stale segments that `open` removes.
        self.write_cursor()?;
        self.remove_segments(&removed)
    }

    /// Reads up to `count` records of segment `seq` from byte `start`; returns them and the offset after them.
    fn read_records(&self, seq: u64, start: u64, count: usize) -> Result<(Vec<Vec<u8>>, u64), SpoolError> {
        let path = segment_path(&self.dir, seq);
        let mut records = Vec::new();
        let mut offset = start;
        if count == 0 {
            return Ok((records, offset));
        }
        let mut file = File::open(&path).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(start)).map_err(io_err(&path))?;
        let mut reader = BufReader::new(file);
        while records.len() < count {
            let mut line = Vec::new();
            let read = reader.read_until(b'\n', &mut line).map_err(io_err(&path))?;
            if line.pop() != Some(b'\n') {
                let detail = format!("expected a complete record at offset {offset}");
                return Err(SpoolError::Corrupt { path, detail });
            }
            offset = offset.saturating_add(to_u64(read));
            records.push(line);
        }
        Ok((records, offset))
    }

    /// Persists the cursor atomically: write a temporary file, fsync it, rename it over the old one.
    fn write_cursor(&self) -> Result<(), SpoolError> {
        let segment = self.segments.front().map_or(self.next_seq, |s| s.seq);
        let text = format!(r#"{{"segment":{segment},"offset":{},"dropped":{}}}"#, self.front_offset, self.dropped);
        let tmp = self.dir.join(CURSOR_TMP);
        let mut file =
            OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp).map_err(io_err(&tmp))?;
        file.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        let path = self.dir.join(CURSOR_FILE);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }

    fn remove_segments(&self, seqs: &[u64]) -> Result<(), SpoolError> {
        for &seq in seqs {
            let path = segment_path(&self.dir, seq);
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        Ok(())
    }
}

/// Reads the cursor file; a spool without one starts from the beginning.
fn read_cursor(dir: &Path) -> Result<Cursor, SpoolError> {
    let path = dir.join(CURSOR_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SpoolError::Corrupt { path, detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursor::default()),
        Err(source) => Err(SpoolError::Io { path, source }),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// `00000000000000000001.jsonl`: zero-padded so that name order is age order.
fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_owned(), source }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// A 1000-byte payload carrying `i`: 130 such lines fill a 128 KiB segment of a 1 MiB spool.
    fn record(i: usize) -> Vec<u8> {
        let mut r = format!(r#"{{"i":{i},"pad":""#).into_bytes();
        r.resize(998, b'x');
        r.extend_from_slice(br#""}"#);
        r
    }

    fn records(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
        range.map(record).collect()
    }

    /// A 1 MiB spool without fsync (faster tests), filled with `range`.
    fn open_filled(dir: &Path, range: std::ops::Range<usize>) -> Spool {
        let mut spool = Spool::open(dir, MIB).unwrap().with_sync(false);
        range.for_each(|i| spool.push(&record(i)).unwrap());
        spool
    }

    fn segment_files(dir: &Path) -> Vec<u64> {
        let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap());
        let mut seqs: Vec<u64> = names.filter_map(|n| parse_segment_name(&n)).collect();
        seqs.sort_unstable();
        seqs
    }

    #[test]
    fn push_peek_ack_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = open_filled(tmp.path(), 0..3);
        assert_eq!((spool.len(), spool.is_empty()), (3, false));
        assert_eq!(spool.peek(2).unwrap(), records(0..2));
        assert_eq!(spool.peek(2).unwrap(), records(0..2), "peek does not remove");
        spool.ack(1).unwrap();
        assert_eq!(spool.peek(10).unwrap(), records(1..3));
        spool.ack(2).unwrap();
        assert!(spool.is_empty() && spool.peek(10).unwrap().is_empty());
        spool.push(&record(3)).unwrap();
        assert_eq!(spool.peek(10).unwrap(), records(3..4));
        assert_eq!(spool.dropped(), 0);
    }

    #[test]
    fn reopen_keeps_unsent_records_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = open_filled(tmp.path(), 0..200);
        spool.ack(150).unwrap();
        drop(spool); // the agent restarts
        let mut spool = Spool::open(tmp.path(), MIB).unwrap();
        assert_eq!(spool.len(), 50);
        assert_eq!(spool.peek(100).unwrap(), records(150..200));
        spool.push(&record(200)).unwrap();
        spool.ack(50).unwrap();
        assert_eq!(spool.peek(10).unwrap(), records(200..201));
    }

    #[test]
    fn crash_recovery_truncates_a_partial_trailing_line() {
        let tmp = tempfile::tempdir().unwrap();
        open_filled(tmp.path(), 0..3).ack(1).unwrap();
        let newest = segment_path(tmp.path(), 1);
        OpenOptions::new().append(true).open(&newest).unwrap().write_all(br#"{"i":3,"pa"#).unwrap();
        let mut spool = Spool::open(tmp.path(), MIB).unwrap();
        assert_eq!(spool.len(), 2);
        spool.push(&record(4)).unwrap();
        assert_eq!(spool.peek(10).unwrap(), [record(1), record(2), record(4)]);
    }

    #[test]
    fn over_budget_drops_oldest_whole_segments_and_counts_them() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = open_filled(tmp.path(), 0..100);
        spool.ack(30).unwrap(); // 30 of the first segment's 130 records were sent
        (100..1300).for_each(|i| spool.push(&record(i)).unwrap());
        // 1047 lines fit in 1 MiB, so two 130-record segments went: 100 unsent, then 130.
        assert_eq!((spool.dropped(), spool.len()), (100 + 130, 1300 - 260));
        let size = |s: &u64| fs::metadata(segment_path(tmp.path(), *s)).unwrap().len();
        assert!(segment_files(tmp.path()).iter().map(size).sum::<u64>() <= MIB);
        assert_eq!(spool.peek(2000).unwrap(), records(260..1300));
        drop(spool);
        let mut spool = Spool::open(tmp.path(), MIB).unwrap();
        assert_eq!(spool.dropped(), 230, "the dropped count survives a restart");
        assert_eq!(spool.peek(2000).unwrap(), records(260..1300));
    }

    #[test]
    fn ack_after_a_drop_skips_the_dropped_peeked_records() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = open_filled(tmp.path(), 0..1040);
        assert_eq!(spool.peek(5).unwrap().len(), 5);
        (1040..1100).for_each(|i| spool.push(&record(i)).unwrap()); // drops the peeked records' segment
        assert_eq!(spool.dropped(), 130);
        spool.ack(5).unwrap();
        assert_eq!(spool.peek(1).unwrap(), records(130..131));
    }

    #[test]
    fn ack_across_segments_deletes_consumed_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = open_filled(tmp.path(), 0..300);
        assert_eq!(segment_files(tmp.path()), [1, 2, 3]);
        assert_eq!(spool.peek(200).unwrap(), records(0..200));
        spool.ack(200).unwrap();
        assert_eq!(segment_files(tmp.path()), [2, 3]);
        assert_eq!(spool.peek(1).unwrap(), records(200..201));
        spool.ack(usize::MAX).unwrap();
        assert!(spool.is_empty() && segment_files(tmp.path()).is_empty());
        spool.push(&record(300)).unwrap();
        assert_eq!(segment_files(tmp.path()), [4]);
        drop(spool);
        assert_eq!(Spool::open(tmp.path(), MIB).unwrap().peek(10).unwrap(), records(300..301));
    }

    #[test]
    fn corrupt_cursor_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(CURSOR_FILE), b"not json").unwrap();
        assert!(matches!(Spool::open(tmp.path(), MIB), Err(SpoolError::Corrupt { .. })));
        // Valid JSON, but the offset falls inside a record.
        fs::write(segment_path(tmp.path(), 1), b"{\"a\":1}\n").unwrap();
        fs::write(tmp.path().join(CURSOR_FILE), br#"{"segment":1,"offset":3,"dropped":0}"#).unwrap();
        let err = Spool::open(tmp.path(), MIB).unwrap_err();
        assert!(matches!(err, SpoolError::Corrupt { .. }) && err.to_string().contains("cursor"), "{err}");
    }

    #[test]
    fn oversized_and_multiline_payloads_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(tmp.path(), MIB).unwrap();
        let big = vec![b'x'; 128 * 1024 + 1];
        assert!(matches!(spool.push(&big), Err(SpoolError::PayloadTooLarge { .. })));
        assert!(matches!(spool.push(b"{\"a\":\n1}"), Err(SpoolError::NewlineInPayload)));
        assert!(spool.is_empty());
    }

    #[test]
    fn files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let mut spool = Spool::open(&dir, MIB).unwrap();
        spool.push(b"{}").unwrap();
        spool.ack(0).unwrap(); // writes the cursor
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&segment_path(&dir, 1)), 0o600);
        assert_eq!(mode(&dir.join(CURSOR_FILE)), 0o600);
    }
}
