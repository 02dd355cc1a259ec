//! The threads a run's stages run on: at most `jobs`, started only when every one already
//! started is busy, and reused for the next stage — a chain of forty stages starts one thread,
//! not forty (each start and exit of a thread is an `mmap`, a signal stack for wasmtime's trap
//! handler and a `munmap` more per stage).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

/// One stage's work, borrowing from the run.
pub(super) type Job<'scope> = Box<dyn FnOnce() + Send + 'scope>;

/// A pool of scoped threads; jobs queue in order and each idle thread takes the next.
pub(super) struct Workers<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    queue: Sender<Job<'scope>>,
    waiting: Arc<Mutex<Receiver<Job<'scope>>>>,
    most: usize,
    started: usize,
    idle: usize,
}

impl<'scope, 'env> Workers<'scope, 'env> {
    /// A pool of at most `most` threads in `scope`; none is started yet.
    pub(super) fn new(scope: &'scope Scope<'scope, 'env>, most: usize) -> Self {
        let (queue, waiting) = channel();
        Self {
            scope,
            queue,
            waiting: Arc::new(Mutex::new(waiting)),
            most: most.max(1),
            started: 0,
            idle: 0,
        }
    }

    /// Runs `job` on an idle thread, or on a new one while fewer than `most` are started. The
    /// caller runs at most `most` jobs at once and says when each ended ([`Self::job_ended`]).
    pub(super) fn run(&mut self, job: Job<'scope>) {
        if self.idle > 0 {
            self.idle -= 1;
        } else if self.started < self.most {
            self.started += 1;
            let waiting = Arc::clone(&self.waiting);
            let spawned = std::thread::Builder::new()
                .name("sluice-stage".into())
                .spawn_scoped(self.scope, move || {
                    while let Some(job) = next(&waiting) {
                        job();
                    }
                });
            if spawned.is_err() {
                self.started -= 1;
                if self.started == 0 {
                    // No thread to be had at all: the job runs here rather than wait forever.
                    job();
                    return;
                }
                // The job waits for one of the threads already started.
            }
        }
        // The receiver lives as long as any worker, and the queue is only closed by drop.
        let _ = self.queue.send(job);
    }

    /// One job ended: its thread takes the next.
    pub(super) fn job_ended(&mut self) {
        self.idle = (self.idle + 1).min(self.started);
    }

    /// How many threads were started.
    #[cfg(test)]
    fn started(&self) -> usize {
        self.started
    }
}

/// The next job, or `None` once the pool is dropped and the queue is empty.
fn next<'scope>(waiting: &Mutex<Receiver<Job<'scope>>>) -> Option<Job<'scope>> {
    let waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
    waiting.recv().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::mpsc;

    #[test]
    fn jobs_one_after_another_share_one_thread() {
        let threads = std::thread::scope(|scope| {
            let mut workers = Workers::new(scope, 4);
            let (done, ended) = mpsc::channel();
            let mut threads = HashSet::new();
            for _ in 0..10 {
                let done = done.clone();
                workers.run(Box::new(move || {
                    let _ = done.send(std::thread::current().id());
                }));
                threads.insert(ended.recv().expect("the job ran"));
                workers.job_ended();
            }
            assert_eq!(workers.started(), 1);
            threads
        });
        assert_eq!(threads.len(), 1);
    }

    #[test]
    fn jobs_at_once_get_threads_of_their_own_up_to_the_limit() {
        let all_met = std::thread::scope(|scope| {
            let mut workers = Workers::new(scope, 3);
            let (arrived, arrivals) = mpsc::channel();
            let (release, released) = mpsc::channel::<()>();
            let released = Arc::new(Mutex::new(released));
            for _ in 0..3 {
                let (arrived, released) = (arrived.clone(), Arc::clone(&released));
                // Each job says it started, then holds its thread until the test lets it go.
                workers.run(Box::new(move || {
                    let _ = arrived.send(());
                    let _ = released.lock().map(|r| r.recv());
                }));
            }
            let timeout = std::time::Duration::from_secs(10);
            let met = (0..3).all(|_| arrivals.recv_timeout(timeout).is_ok());
            for _ in 0..3 {
                let _ = release.send(());
            }
            (met, workers.started())
        });
        assert_eq!(
            all_met,
            (true, 3),
            "three jobs at once ran on three threads"
        );
    }
}
