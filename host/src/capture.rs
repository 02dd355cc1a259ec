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

use crate::events::{Event, EventSink, LogSource};

/// A line longer than this is cut into pieces, so a plugin cannot grow host memory without end
/// by never printing a newline.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// The log of one stage run. Cheap to clone; all clones write to the same place.
#[derive(Clone)]
pub struct StageLog(Arc<Mutex<Inner>>);

struct Inner {
    stage: String,
    started: Instant,
    file: Option<BufWriter<File>>,
    events: EventSink,
    stdout_partial: Vec<u8>,
    stderr_partial: Vec<u8>,
    lines: u64,
    /// The last few stderr lines, where a guest's panic message usually is.
    stderr_tail: std::collections::VecDeque<String>,
}

impl std::fmt::Debug for StageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageLog")
    }
}

impl StageLog {
    /// A log that streams to `events` and, when `file` is given, stores lines there.
    pub fn new(stage: &str, file: Option<&Path>, events: EventSink) -> Result<Self> {
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
            events,
            stdout_partial: Vec::new(),
            stderr_partial: Vec::new(),
            lines: 0,
            stderr_tail: std::collections::VecDeque::new(),
        }))))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a message from the `log` interface (may span several lines).
    pub fn message(&self, source: LogSource, message: &str) {
        let mut inner = self.lock();
        for line in message.lines() {
            inner.emit(source, line.as_bytes());
        }
    }

    /// A WASI output stream feeding this log.
    pub fn stream(&self, source: LogSource) -> CaptureStream {
        CaptureStream {
            log: self.clone(),
            source,
        }
    }

    fn write_bytes(&self, source: LogSource, bytes: &[u8]) {
        let mut inner = self.lock();
        let mut partial = std::mem::take(inner.partial_mut(source));
        for &byte in bytes {
            if byte == b'\n' {
                inner.emit(source, &partial);
                partial.clear();
            } else {
                partial.push(byte);
                if partial.len() >= MAX_LINE_BYTES {
                    inner.emit(source, &partial);
                    partial.clear();
                }
            }
        }
        *inner.partial_mut(source) = partial;
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

impl Inner {
    fn partial_mut(&mut self, source: LogSource) -> &mut Vec<u8> {
        if source == LogSource::Stderr {
            &mut self.stderr_partial
        } else {
            &mut self.stdout_partial
        }
    }

    fn emit(&mut self, source: LogSource, bytes: &[u8]) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = String::from_utf8_lossy(bytes).into_owned();
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
        self.log.write_bytes(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.write_bytes(self.source, buf);
        Poll::Ready(Ok(buf.len()))
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
        let log = StageLog::new("build", Some(&path), EventSink::new(tx))?;
        log.write_bytes(LogSource::Stdout, b"hel");
        log.write_bytes(LogSource::Stdout, b"lo\r\nwor");
        log.message(LogSource::Warn, "a\nb");
        log.write_bytes(LogSource::Stdout, b"ld");
        assert_eq!(log.finish()?, 4);
        let lines: Vec<String> = rx
            .try_iter()
            .filter_map(|e| match e {
                Event::Log { line, stage, .. } if stage == "build" => Some(line),
                _ => None,
            })
            .collect();
        assert_eq!(lines, ["hello", "a", "b", "world"]);
        let stored = std::fs::read_to_string(&path)?;
        assert!(stored.contains("stdout hello"), "{stored}");
        assert!(stored.contains("warn   b"), "{stored}");
        Ok(())
    }

    #[test]
    fn endless_lines_are_cut() -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let log = StageLog::new("s", None, EventSink::new(tx))?;
        log.write_bytes(LogSource::Stderr, &vec![b'x'; MAX_LINE_BYTES * 2 + 5]);
        log.finish()?;
        assert_eq!(rx.try_iter().count(), 3);
        Ok(())
    }
}
