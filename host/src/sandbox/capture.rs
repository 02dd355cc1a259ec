//! Captures what a stage prints — WASI stdout/stderr and `log` calls — as lines tagged with the
//! stage's name: streamed live as events and stored in the stage's log file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use anyhow::{Context, Result};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use crate::model::events::{Event, EventSink, LogSource};
use crate::model::text::one_line;
use crate::trust::secrets::Masker;

/// After escaping (which can lengthen a line of control characters), a log line is cut here.
const MAX_LOG_LINE_BYTES: usize = 64 << 10;
/// A line longer than this is cut into pieces, so a plugin cannot grow host memory without end
/// by never printing a newline.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// How far behind the log file may lag what the stage wrote (while more keeps coming).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The log of one stage run. Cheap to clone; all clones write to the same place.
#[derive(Clone)]
pub struct StageLog(Arc<Mutex<Inner>>);

struct Inner {
    stage: String,
    started: Instant,
    file: Option<BufWriter<File>>,
    /// When the file was last flushed: a log is readable while the stage runs (`sluice serve`
    /// streams it), at most `FLUSH_EVERY` behind, without a write per line.
    flushed: Instant,
    events: EventSink,
    stdout_partial: Vec<u8>,
    stderr_partial: Vec<u8>,
    lines: u64,
    masker: Masker,
    /// Bytes allowed in this log, and bytes so far.
    limit: u64,
    bytes: u64,
    /// Set once the limit is hit; later output is refused.
    overflowed: bool,
    /// The last few stderr lines, where a guest's panic message usually is.
    stderr_tail: std::collections::VecDeque<String>,
}

impl std::fmt::Debug for StageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageLog")
    }
}

impl StageLog {
    /// A log that streams to `events` and, when `file` is given, stores lines there. Secret
    /// values are masked; past `limit` bytes, output is refused (and the stage stopped).
    pub fn new(
        stage: &str,
        file: Option<&Path>,
        events: EventSink,
        masker: Masker,
        limit: u64,
    ) -> Result<Self> {
        let file = match file {
            Some(path) => {
                Some(BufWriter::new(File::create(path).with_context(|| {
                    format!("cannot create {}", path.display())
                })?))
            }
            None => None,
        };
        Ok(Self(Arc::new(Mutex::new(Inner {
            stage: stage.to_string(),
            started: Instant::now(),
            file,
            flushed: Instant::now()
                .checked_sub(FLUSH_EVERY)
                .unwrap_or_else(Instant::now),
            events,
            stdout_partial: Vec::new(),
            stderr_partial: Vec::new(),
            lines: 0,
            masker,
            limit,
            bytes: 0,
            overflowed: false,
            stderr_tail: std::collections::VecDeque::new(),
        }))))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a message (may span several lines). Err once the log limit is exceeded.
    pub fn message(&self, source: LogSource, message: &str) -> Result<(), LogFull> {
        let mut inner = self.lock();
        for line in message.lines() {
            inner.emit(source, line.as_bytes());
        }
        inner.flush_now_and_then();
        inner.check()
    }

    /// Whether the stage wrote more than its log limit.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// A WASI output stream feeding this log.
    pub fn stream(&self, source: LogSource) -> CaptureStream {
        CaptureStream {
            log: self.clone(),
            source,
        }
    }

    /// Raw output of `source`, split into lines (a line never grows past a bound); Err once the
    /// log limit is exceeded.
    pub fn write_bytes(&self, source: LogSource, bytes: &[u8]) -> Result<(), LogFull> {
        let mut inner = self.lock();
        inner.check()?;
        let mut partial = std::mem::take(inner.partial_mut(source));
        for &byte in bytes {
            if byte == b'\n' {
                inner.emit(source, &partial);
                partial.clear();
            } else {
                partial.push(byte);
                if partial.len() >= MAX_LINE_BYTES {
                    partial = inner.emit_cut(source, &partial);
                }
            }
        }
        *inner.partial_mut(source) = partial;
        inner.flush_now_and_then();
        inner.check()
    }

    /// Emits the unterminated last line of `source` (a program's output ended).
    pub fn end_line(&self, source: LogSource) {
        let mut inner = self.lock();
        let rest = std::mem::take(inner.partial_mut(source));
        if !rest.is_empty() {
            inner.emit(source, &rest);
        }
    }

    /// Emits unterminated last lines and flushes the file. Call once the stage is over.
    pub fn finish(&self) -> Result<u64> {
        let mut inner = self.lock();
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let rest = std::mem::take(inner.partial_mut(source));
            if !rest.is_empty() {
                inner.emit(source, &rest);
            }
        }
        if let Some(file) = inner.file.as_mut() {
            file.flush().context("cannot write the stage log")?;
        }
        Ok(inner.lines)
    }

    /// The last two meaningful stderr lines, joined: for a Rust guest, the panic location and
    /// message.
    pub fn stderr_tail(&self) -> Option<String> {
        let inner = self.lock();
        let lines: Vec<&str> = inner.stderr_tail.iter().map(|l| l.trim()).collect();
        (!lines.is_empty()).then(|| lines.join(" "))
    }
}

/// The stage's output exceeded its log limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFull;

impl Inner {
    /// Flushes the file when it was last flushed `FLUSH_EVERY` ago or more.
    fn flush_now_and_then(&mut self) {
        if self.flushed.elapsed() < FLUSH_EVERY {
            return;
        }
        if let Some(file) = self.file.as_mut() {
            // A failed write shows at the end, when `finish` flushes again.
            let _ = file.flush();
        }
        self.flushed = Instant::now();
    }

    fn check(&self) -> Result<(), LogFull> {
        if self.overflowed {
            Err(LogFull)
        } else {
            Ok(())
        }
    }

    fn partial_mut(&mut self, source: LogSource) -> &mut Vec<u8> {
        if source == LogSource::Stderr {
            &mut self.stderr_partial
        } else {
            &mut self.stdout_partial
        }
    }

    /// Emits the start of an over-long line and returns the rest: masked first, and cut so that
    /// a secret value the cut would split stays whole in the rest.
    fn emit_cut(&mut self, source: LogSource, line: &[u8]) -> Vec<u8> {
        let masked = self.masker.mask_bytes(line);
        let keep = self
            .masker
            .longest()
            .saturating_sub(1)
            .min(MAX_LINE_BYTES / 2);
        let cut = masked.len().saturating_sub(keep);
        self.emit(source, &masked[..cut]);
        masked[cut..].to_vec()
    }

    fn emit(&mut self, source: LogSource, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        self.bytes = self.bytes.saturating_add(bytes.len() as u64 + 1);
        if self.bytes > self.limit {
            self.overflowed = true;
            let note = format!(
                "sluice: log limit of {} reached; the stage is stopped",
                crate::config::limits::fmt_bytes(self.limit)
            );
            self.store(LogSource::Error, note);
            return;
        }
        let text = String::from_utf8_lossy(bytes);
        // Masked first (a secret may hold any byte), then made safe to show.
        let line = one_line(&self.masker.mask(&text), MAX_LOG_LINE_BYTES);
        self.store(source, line);
    }

    fn store(&mut self, source: LogSource, line: String) {
        self.lines += 1;
        if source == LogSource::Stderr
            && !line.trim().is_empty()
            && !line.starts_with("note: run with `RUST_BACKTRACE")
        {
            if self.stderr_tail.len() == 2 {
                self.stderr_tail.pop_front();
            }
            self.stderr_tail.push_back(line.clone());
        }
        if let Some(file) = self.file.as_mut() {
            let at = self.started.elapsed().as_secs_f64();
            // A failed log write must not kill the stage; `finish` reports the error.
            let _ = writeln!(file, "+{at:.3}s {:<6} {line}", source.label());
        }
        self.events.emit(Event::Log {
            stage: self.stage.clone(),
            source,
            line,
        });
    }
}

/// stdout or stderr of one stage, as WASI sees it.
#[derive(Clone)]
pub struct CaptureStream {
    log: StageLog,
    source: LogSource,
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.log
            .write_bytes(self.source, &bytes)
            .map_err(|LogFull| StreamError::Trap(wasmtime::format_err!("log limit exceeded")))
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        if self.log.overflowed() {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "log limit exceeded"
            )));
        }
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.log.write_bytes(self.source, buf) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(LogFull) => Poll::Ready(Err(std::io::Error::other("log limit exceeded"))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn splits_lines_across_writes_and_flushes_the_tail() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.log");
        let (tx, rx) = mpsc::channel();
        let masker = Masker::new(["s3cret-value".to_string()]);
        let log = StageLog::new("build", Some(&path), EventSink::new(tx), masker, u64::MAX)?;
        let _ = log.write_bytes(LogSource::Stdout, b"hel");
        let _ = log.write_bytes(LogSource::Stdout, b"lo\r\nwor");
        let _ = log.message(LogSource::Warn, "a\nb s3cret-value");
        let _ = log.write_bytes(LogSource::Stdout, b"ld");
        assert_eq!(log.finish()?, 4);
        let lines: Vec<String> = rx
            .try_iter()
            .filter_map(|e| match e {
                Event::Log { line, stage, .. } if stage == "build" => Some(line),
                _ => None,
            })
            .collect();
        assert_eq!(lines, ["hello", "a", "b ***", "world"]);
        let stored = std::fs::read_to_string(&path)?;
        assert!(stored.contains("stdout hello"), "{stored}");
        assert!(stored.contains("warn   b ***"), "{stored}");
        assert!(!stored.contains("s3cret"), "{stored}");
        Ok(())
    }

    #[test]
    fn a_secret_cut_by_the_line_limit_is_still_masked() -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let secret = "s3cret-spanning-the-cut";
        let log = StageLog::new(
            "build",
            None,
            EventSink::new(tx),
            Masker::new([secret.to_string()]),
            u64::MAX,
        )?;
        // Written in two pieces, with the line limit falling inside the secret.
        let mut text = vec![b'a'; MAX_LINE_BYTES - 6];
        text.extend_from_slice(&secret.as_bytes()[..4]);
        log.write_bytes(LogSource::Stdout, &text)
            .map_err(|_| anyhow::anyhow!("log full"))?;
        log.write_bytes(LogSource::Stdout, &secret.as_bytes()[4..])
            .map_err(|_| anyhow::anyhow!("log full"))?;
        log.finish()?;
        let printed: String = rx
            .try_iter()
            .filter_map(|e| match e {
                Event::Log { line, .. } => Some(line),
                _ => None,
            })
            .collect();
        assert!(!printed.contains("s3cret"), "leaked across the cut");
        assert!(printed.contains("***"));
        Ok(())
    }

    #[test]
    fn endless_lines_are_cut() -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let log = StageLog::new("s", None, EventSink::new(tx), Masker::default(), u64::MAX)?;
        let _ = log.write_bytes(LogSource::Stderr, &vec![b'x'; MAX_LINE_BYTES * 2 + 5]);
        log.finish()?;
        assert_eq!(rx.try_iter().count(), 3);
        Ok(())
    }

    #[test]
    fn the_log_limit_stops_output_once_and_says_so() -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let log = StageLog::new("s", None, EventSink::new(tx), Masker::default(), 20)?;
        assert!(log.write_bytes(LogSource::Stdout, b"0123456789\n").is_ok());
        assert!(log.write_bytes(LogSource::Stdout, b"0123456789\n").is_err());
        assert!(log.overflowed());
        assert_eq!(log.message(LogSource::Info, "more"), Err(LogFull));
        let lines: Vec<String> = rx
            .try_iter()
            .filter_map(|e| match e {
                Event::Log { line, .. } => Some(line),
                _ => None,
            })
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].contains("log limit of 20 B reached"), "{lines:?}");
        Ok(())
    }
}
