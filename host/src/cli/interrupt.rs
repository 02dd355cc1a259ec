//! Ctrl-C, SIGTERM and SIGHUP for the commands that run stages (`run`, `resume`, `agent`): the
//! first stops the running stages so the run is recorded, a second quits at once.

use sluice::run::Interrupt;

/// Ctrl-C, SIGTERM (how CI systems and container runtimes stop a job) and SIGHUP stop the
/// running stages; the run is recorded and the process exits with the run's code. A second
/// signal quits at once.
pub fn interrupt_on_ctrl_c() -> Interrupt {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = Interrupt::new();
    let trigger = interrupt.clone();
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        let mut next = async || {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.ok().map(|()| "Ctrl-C"),
                s = term.recv() => s.map(|()| "SIGTERM"),
                s = hup.recv() => s.map(|()| "SIGHUP"),
            }
        };
        if let Some(which) = next().await {
            eprintln!(
                "\ninterrupted ({which}): stopping the running stages and recording the run (again to quit now)"
            );
            trigger.trigger_because(&format!(
                "interrupted ({which}) and stopped; earlier artifacts are kept"
            ));
            if next().await.is_some() {
                std::process::exit(130);
            }
        }
    });
    interrupt
}
