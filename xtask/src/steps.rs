//! Timed steps for the CI flow: each step prints how long it took, and a summary table (also
//! after a failure) shows where the time went and which step stopped the run.

use std::time::{Duration, Instant};

use anyhow::Result;

/// One planned step: a name for the logs and the work.
pub type Step<'a> = (&'static str, Box<dyn FnOnce() -> Result<()> + 'a>);

enum Outcome {
    Passed(Duration),
    Failed(Duration),
    NotRun,
}

/// Runs `plan` in order, stopping at the first failure; prints
/// `xtask: step <name> took <secs>s` after each step and the summary table at the end.
pub fn run(title: &str, plan: Vec<Step<'_>>) -> Result<()> {
    let started = Instant::now();
    let mut outcomes: Vec<(&str, Outcome)> = Vec::new();
    let mut failure = None;
    for (name, work) in plan {
        if failure.is_some() {
            outcomes.push((name, Outcome::NotRun));
            continue;
        }
        eprintln!("xtask: step {name}");
        let step_started = Instant::now();
        let result = work();
        let took = step_started.elapsed();
        eprintln!("xtask: step {name} took {:.1}s", took.as_secs_f64());
        match result {
            Ok(()) => outcomes.push((name, Outcome::Passed(took))),
            Err(err) => {
                outcomes.push((name, Outcome::Failed(took)));
                failure = Some(err.context(format!("step {name} failed")));
            }
        }
    }
    eprint!("{}", summary(title, &outcomes, started.elapsed()));
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Runs `main` here and `beside` on another thread at the same time (work that leaves the CPU
/// idle part of the time: a download beside a compile, single-threaded tools beside a parallel
/// build); both must succeed. Each part's time is printed, so the summary's one line for the
/// pair can still be read apart.
pub fn alongside(
    main: (&str, impl FnOnce() -> Result<()>),
    beside: (&str, impl FnOnce() -> Result<()> + Send),
) -> Result<()> {
    std::thread::scope(|scope| {
        let (beside_name, beside_work) = beside;
        let other = scope.spawn(move || timed_part(beside_name, beside_work));
        let here = timed_part(main.0, main.1);
        let there = other
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("{beside_name} panicked")));
        here.and(there)
    })
}

/// Runs one part of a step, printing how long it took; its error names it.
pub fn timed_part(name: &str, work: impl FnOnce() -> Result<()>) -> Result<()> {
    let started = Instant::now();
    let result = work();
    eprintln!(
        "xtask: part {name} took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    result.map_err(|err| err.context(format!("{name} failed")))
}

fn summary(title: &str, outcomes: &[(&str, Outcome)], total: Duration) -> String {
    let width = outcomes
        .iter()
        .map(|(name, _)| name.len())
        .chain([5])
        .max()
        .unwrap_or(5);
    let mut table = format!("xtask: {title} summary\n");
    for (name, outcome) in outcomes {
        let (time, verdict) = match outcome {
            Outcome::Passed(took) => (format!("{:.1}s", took.as_secs_f64()), "ok"),
            Outcome::Failed(took) => (format!("{:.1}s", took.as_secs_f64()), "FAILED"),
            Outcome::NotRun => ("-".to_string(), "not run"),
        };
        table.push_str(&format!("  {name:<width$}  {time:>8}  {verdict}\n"));
    }
    let verdict = if outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Failed(_)))
    {
        "FAILED"
    } else {
        "ok"
    };
    table.push_str(&format!(
        "  {:<width$}  {:>8}  {verdict}\n",
        "total",
        format!("{:.1}s", total.as_secs_f64())
    ));
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    #[test]
    fn a_failed_step_stops_the_plan_and_the_rest_are_not_run() {
        let ran = std::cell::Cell::new(0);
        let plan: Vec<Step<'_>> = vec![
            (
                "one",
                Box::new(|| {
                    ran.set(ran.get() + 1);
                    Ok(())
                }),
            ),
            ("two", Box::new(|| Err(anyhow!("boom")))),
            (
                "three",
                Box::new(|| {
                    ran.set(ran.get() + 10);
                    Ok(())
                }),
            ),
        ];
        let err = run("test", plan).err().map(|e| format!("{e:#}"));
        assert_eq!(err.as_deref(), Some("step two failed: boom"));
        assert_eq!(ran.get(), 1);
    }

    #[test]
    fn the_summary_lists_every_step_with_its_verdict() {
        let table = summary(
            "test",
            &[
                ("fmt", Outcome::Passed(Duration::from_millis(1200))),
                ("layers", Outcome::Failed(Duration::from_millis(60))),
                ("host-test", Outcome::NotRun),
            ],
            Duration::from_secs(2),
        );
        assert!(table.contains("  fmt            1.2s  ok\n"), "{table}");
        assert!(table.contains("  layers         0.1s  FAILED\n"), "{table}");
        assert!(
            table.contains("  host-test         -  not run\n"),
            "{table}"
        );
        assert!(table.contains("  total          2.0s  FAILED\n"), "{table}");
    }
}
