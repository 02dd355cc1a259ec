//! One whole process measured for the benches: its wall time and its peak resident memory (from
//! `wait4`). Its stdout and stderr go to unnamed temporary files, not pipes, so a chatty child
//! never blocks on a full pipe whichever stream it fills; they are read back once it has ended,
//! for the message when it fails.

use std::fs::File;
use std::io::{Read, Seek};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Wall time and peak resident memory of one whole process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall_ms: f64,
    pub peak_kib: u64,
}

impl Sample {
    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

/// Runs `command` to its end, its output kept aside; fails unless it exits 0, with what it wrote.
pub fn measure(command: &mut Command) -> Result<Sample> {
    let stdout = tempfile::tempfile().context("cannot create a file for a child's stdout")?;
    let stderr = tempfile::tempfile().context("cannot create a file for a child's stderr")?;
    command
        .stdout(Stdio::from(stdout.try_clone()?))
        .stderr(Stdio::from(stderr.try_clone()?));
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let (status, peak_kib) = wait_with_peak_memory(&child)?;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status != 0 {
        let (out, err) = (read_back(stdout), read_back(stderr));
        bail!("{command:?} failed (wait status {status}):\n{err}{out}");
    }
    Ok(Sample { wall_ms, peak_kib })
}

/// What a child wrote into `file` (empty when it cannot be read back).
fn read_back(mut file: File) -> String {
    let mut bytes = Vec::new();
    if file.rewind().is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reaps `child` with `wait4`, which reports the peak resident memory of exactly that process.
#[allow(unsafe_code)]
pub fn wait_with_peak_memory(child: &Child) -> Result<(i32, u64)> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data, valid when zeroed; `wait4` writes both out-parameters,
    // which live for the whole call; `pid` is our own child, not yet reaped (std never reaps a
    // child it was not asked to wait for).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More than a pipe holds (64 KiB) on both streams: the old stderr-only reader blocked here.
    #[test]
    fn a_child_filling_both_streams_ends_and_is_measured() -> Result<()> {
        let sample = measure(Command::new("sh").args([
            "-c",
            "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2",
        ]))?;
        assert!(sample.wall_ms > 0.0);
        assert!(sample.peak_kib > 0);
        Ok(())
    }

    #[test]
    fn a_failing_child_is_an_error_with_what_it_wrote() {
        let err = measure(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("err\nout"), "{err}");
        assert!(err.contains("wait status"), "{err}");
    }
}
