//! One whole process measured for the benches: its wall time and its own peak resident memory.
//! Its stdout and stderr go to unnamed temporary files, not pipes, so a chatty child never blocks
//! on a full pipe whichever stream it fills; they are read back once it has ended, for the
//! message when it fails.
//!
//! The peak is the process's high-water mark (`VmHWM`), read from `/proc` as it exits: each
//! measured child is traced ([`spawn_traced`]) only to be held at its exec until [`reap`] lets
//! it go and stopped as it exits (`PTRACE_O_TRACEEXIT`); otherwise it only stops for the signals
//! it receives, which are passed on (a shell script: one per command it ran, tens of µs each).
//! Not `wait4`'s `ru_maxrss`: that one is never below what the spawning process had resident
//! when it forked (the child's memory before its exec counts), and it covers every descendant
//! the child reaped — a shell script of 1.6 MiB spawned by xtask read 3.6 MiB.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
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
    let child = spawn_traced(command)?;
    let (status, peak_kib) = reap(std::slice::from_ref(&child))?[0];
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

/// Starts `command` traced, held at its exec until [`reap`] lets it go (so that a crowd of them
/// starts together), and so that [`reap`] reads its own peak memory as it exits.
#[allow(unsafe_code)]
pub fn spawn_traced(command: &mut Command) -> Result<Child> {
    // SAFETY: between fork and exec the closure makes one system call and touches no lock or
    // allocation.
    unsafe {
        command.pre_exec(|| {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let pid = pid_of(&child)?;
    // A traced child stops with SIGTRAP after its exec: from there on, stop it as it exits
    // (and kill it should xtask die first).
    let mut status: libc::c_int = 0;
    // SAFETY: `status` outlives the call; `pid` is our own child, not yet reaped.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    if waited != pid || !libc::WIFSTOPPED(status) || libc::WSTOPSIG(status) != libc::SIGTRAP {
        bail!("{command:?} did not stop at its exec (wait status {status})");
    }
    let options = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_TRACEEXEC | libc::PTRACE_O_EXITKILL;
    // SAFETY: a plain request on our own stopped tracee; no pointer is passed.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) } == -1 {
        bail!(
            "cannot trace {command:?}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(child)
}

/// Lets every child of `children` (each started by [`spawn_traced`] on this thread) go and waits
/// for them to end, passing on the signals they receive: for each, its wait status and its own
/// peak resident memory in KiB. More than one child must make a process group of their own (the first
/// started with `process_group(0)`, the others in its group), which is what is waited for.
#[allow(unsafe_code)]
pub fn reap(children: &[Child]) -> Result<Vec<(i32, u64)>> {
    let pids = children.iter().map(pid_of).collect::<Result<Vec<_>>>()?;
    let mut peaks: Vec<Option<u64>> = vec![None; pids.len()];
    let mut ended: Vec<Option<(i32, u64)>> = vec![None; pids.len()];
    let target = match pids[..] {
        [] => return Ok(Vec::new()),
        [pid] => pid,
        [first, ..] => {
            // SAFETY: getpgid reads no memory of ours.
            let group = unsafe { libc::getpgid(first) };
            if group != first || pids.iter().any(|p| unsafe { libc::getpgid(*p) } != group) {
                bail!("the children to reap are not a process group of their own");
            }
            -group
        }
    };
    for pid in &pids {
        // SAFETY: a plain request on our own tracee, stopped at its exec; no pointer is passed.
        if unsafe { libc::ptrace(libc::PTRACE_CONT, *pid, 0, 0) } == -1 {
            bail!(
                "cannot start traced child {pid}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    while ended.iter().any(Option::is_none) {
        let mut status: libc::c_int = 0;
        // SAFETY: `rusage` is plain old data, valid when zeroed; `wait4` writes both
        // out-parameters, which live for the whole call.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = unsafe { libc::wait4(target, &mut status, 0, &mut usage) };
        if pid == -1 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("wait4 failed: {err}");
        }
        let Some(index) = pids.iter().position(|p| *p == pid) else {
            continue;
        };
        if libc::WIFSTOPPED(status) {
            let event = status >> 16;
            if event == libc::PTRACE_EVENT_EXIT {
                peaks[index] = own_peak_kib(pid);
            }
            // A stop for a trace event goes on as it was; one for a signal delivers it.
            let signal = if event == 0 {
                libc::WSTOPSIG(status)
            } else {
                0
            };
            // SAFETY: a plain request on our own stopped tracee; no pointer is passed.
            unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, signal) };
            continue;
        }
        // Killed before its exit stop (SIGKILL): `ru_maxrss` is the best there is, an upper bound.
        let fallback = u64::try_from(usage.ru_maxrss).unwrap_or(0);
        ended[index] = Some((status, peaks[index].unwrap_or(fallback)));
    }
    Ok(ended.into_iter().flatten().collect())
}

fn pid_of(child: &Child) -> Result<libc::pid_t> {
    libc::pid_t::try_from(child.id()).context("pid out of range")
}

/// `VmHWM` of a live process, in KiB.
fn own_peak_kib(pid: libc::pid_t) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
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

    /// The child's own peak: neither this process's memory (which a child has before its exec)
    /// nor its own children's.
    #[test]
    fn the_peak_is_the_child_s_own() -> Result<()> {
        // 64 MiB resident here, as the fork copies it.
        let ballast = vec![1u8; 64 << 20];
        let alone = measure(&mut Command::new("true"))?;
        assert!(alone.peak_kib < 16 << 10, "{alone:?}");
        // A 48 MiB grandchild, reaped by the shell, does not count for the shell.
        let parent =
            measure(Command::new("sh").args(["-c", "python3 -c 'b = b\"x\" * (48 << 20)'; true"]))?;
        assert!(parent.peak_kib < 16 << 10, "{parent:?}");
        std::hint::black_box(&ballast);
        Ok(())
    }

    #[test]
    fn the_children_of_a_crowd_are_each_measured() -> Result<()> {
        let mut children: Vec<Child> = Vec::new();
        for n in 0..3 {
            let group = children.first().map_or(0, Child::id);
            let mut command = Command::new("sh");
            command
                .args(["-c", &format!("sleep 0.0{n}; exit {n}")])
                .process_group(i32::try_from(group)?);
            children.push(spawn_traced(&mut command)?);
        }
        let ended = reap(&children)?;
        let codes: Vec<i32> = ended
            .iter()
            .map(|(status, _)| libc::WEXITSTATUS(*status))
            .collect();
        assert_eq!(codes, [0, 1, 2]);
        assert!(ended.iter().all(|(_, peak)| *peak > 0), "{ended:?}");
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
