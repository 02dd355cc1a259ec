//! The scheduling rules, as pure functions of the records so far: whether a stage whose
//! dependencies are done runs, is skipped (and why) or waits at its gate; which artifacts it
//! reads (see [`crate::stage::select_inputs`]); how the run ended.

use std::borrow::Borrow;

use crate::config::pipeline::{InputSelection, StageSpec, When};
use crate::model::report::{RunStatus, StageRecord, StageStatus};

/// The first stage that did not succeed, and how it ended.
pub type StoppedBy = Option<(String, StageStatus)>;

/// What happens to the next pending stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It runs now.
    Run,
    /// It does not run; the reason is recorded.
    Skip(String),
    /// It waits for a person (`approval = "manual"`); the run stops here.
    AwaitApproval,
}

/// Everything outside a stage's own entry that decides whether it runs.
#[derive(Debug)]
pub struct Situation<'a, R: Borrow<StageRecord> = StageRecord> {
    /// Every stage's record so far, in pipeline order (its dependencies are all finished).
    pub records: &'a [R],
    /// The first failure that stops the run (not an allowed one).
    pub stopped_by: &'a StoppedBy,
    /// A failure skips every stage not started yet, not only its dependants.
    pub fail_fast: bool,
    pub interrupted: bool,
    pub preflight_failed: bool,
    /// Approved in advance or by a person just now.
    pub approved: bool,
}

// Only references and flags: copied whatever the records are held in.
impl<R: Borrow<StageRecord>> Clone for Situation<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R: Borrow<StageRecord>> Copy for Situation<'_, R> {}

/// Whether `spec` runs, is skipped or waits, given the situation.
pub fn decide<R: Borrow<StageRecord>>(spec: &StageSpec, now: Situation<'_, R>) -> Decision {
    let skip = if now.interrupted {
        Some("not run: the run was interrupted".to_string())
    } else if now.preflight_failed {
        Some("not run: a plugin could not be prepared".to_string())
    } else {
        match (now.stopped_by, spec.when) {
            (None, When::OnFailure) => Some("not run: no earlier stage failed".to_string()),
            (Some((stopper, status)), When::OnSuccess) if now.fail_fast => {
                Some(format!("not run: stage `{stopper}` {}", status.label()))
            }
            (_, When::OnSuccess) => unmet_dependency(spec, now.records)
                .or_else(|| unmet_inputs(&spec.inputs, now.records)),
            // A rollback that needs the deploy's record runs only if the deploy ran.
            _ => unmet_inputs(&spec.inputs, now.records),
        }
    };
    match skip {
        Some(reason) => Decision::Skip(reason),
        None if spec.manual_approval && !now.approved => Decision::AwaitApproval,
        None => Decision::Run,
    }
}

/// The first recorded stage that failed, crashed or errored without being allowed to (a
/// resumed run keeps counting it).
pub fn first_failure<R: Borrow<StageRecord>>(records: &[R]) -> StoppedBy {
    records
        .iter()
        .map(Borrow::borrow)
        .find(|r| r.status.is_failure() && !r.failure_allowed)
        .map(|r| (r.name.clone(), r.status))
}

/// Whether a stage is over (for its dependants): not waiting, not running, not at a gate.
pub fn is_finished(status: StageStatus) -> bool {
    !matches!(
        status,
        StageStatus::Pending | StageStatus::Running | StageStatus::AwaitingApproval
    )
}

/// Why an on-success stage cannot run: a stage it depends on did not succeed (an allowed
/// failure does not hold it back).
pub fn unmet_dependency<R: Borrow<StageRecord>>(spec: &StageSpec, records: &[R]) -> Option<String> {
    spec.depends_on.iter().find_map(|name| {
        let dep = records
            .iter()
            .map(Borrow::borrow)
            .find(|r| &r.name == name)?;
        let ok = dep.status == StageStatus::Succeeded || dep.failure_allowed;
        (!ok).then(|| {
            format!(
                "not run: it needs stage `{name}`, which {}",
                match dep.status {
                    StageStatus::Skipped => "did not run".to_string(),
                    StageStatus::Cancelled => "was cancelled".to_string(),
                    other => other.label().to_string(),
                }
            )
        })
    })
}

/// How the run ended, from its gate and its first failure.
pub fn run_status(awaiting: Option<&str>, stopped_by: &StoppedBy) -> RunStatus {
    match (awaiting, stopped_by) {
        (Some(_), _) => RunStatus::AwaitingApproval,
        (None, None) => RunStatus::Succeeded,
        (None, Some((_, stage_status))) => RunStatus::from_stopping_stage(*stage_status),
    }
}

/// Why a stage's explicit inputs cannot be met because their stage did not succeed.
pub fn unmet_inputs<R: Borrow<StageRecord>>(
    selection: &InputSelection,
    records: &[R],
) -> Option<String> {
    let InputSelection::Only(refs) = selection else {
        return None;
    };
    refs.iter().find_map(|input| {
        let producer = records
            .iter()
            .map(Borrow::borrow)
            .find(|r| r.name == input.stage)?;
        (producer.status != StageStatus::Succeeded).then(|| {
            format!(
                "not run: it needs `{input}`, but stage `{}` {}",
                producer.name,
                if producer.status == StageStatus::Skipped {
                    "did not run".to_string()
                } else {
                    producer.status.label().to_string()
                }
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pipeline::{Pipeline, parse};
    use std::path::Path;

    const PIPELINE: &str = r#"
version = 1
[pipeline]
name = "p"
[[stage]]
name = "build"
plugin = "b.wasm"
[[stage]]
name = "deploy"
plugin = "d.wasm"
approval = "manual"
[[stage]]
name = "rollback"
plugin = "r.wasm"
when = "on-failure"
inputs = ["deploy/*"]
[[stage]]
name = "notify"
plugin = "n.wasm"
when = "always"
"#;

    fn pipeline() -> Pipeline {
        match parse(Path::new("p/pipeline.toml"), PIPELINE) {
            Ok(pipeline) => pipeline,
            Err(diag) => panic!("{diag}"),
        }
    }

    fn records(pipeline: &Pipeline, statuses: &[StageStatus]) -> Vec<StageRecord> {
        pipeline
            .stages
            .iter()
            .zip(statuses)
            .map(|(spec, status)| {
                let mut record = crate::stage::pending_record(spec, None);
                record.status = *status;
                record
            })
            .collect()
    }

    fn calm<'a>(records: &'a [StageRecord], stopped_by: &'a StoppedBy) -> Situation<'a> {
        Situation {
            records,
            stopped_by,
            fail_fast: true,
            interrupted: false,
            preflight_failed: false,
            approved: false,
        }
    }

    #[test]
    fn a_chain_runs_until_a_gate_that_nobody_approved() {
        let p = pipeline();
        let none: StoppedBy = None;
        assert_eq!(decide(&p.stages[0], calm(&[], &none)), Decision::Run);
        let done = records(&p, &[StageStatus::Succeeded]);
        assert_eq!(
            decide(&p.stages[1], calm(&done, &none)),
            Decision::AwaitApproval
        );
        let approved = Situation {
            approved: true,
            ..calm(&done, &none)
        };
        assert_eq!(decide(&p.stages[1], approved), Decision::Run);
    }

    #[test]
    fn after_a_failure_only_on_failure_and_always_stages_run() {
        let p = pipeline();
        let done = records(&p, &[StageStatus::Failed, StageStatus::Skipped]);
        let stopped = first_failure(&done);
        assert_eq!(stopped, Some(("build".to_string(), StageStatus::Failed)));
        let Decision::Skip(why) = decide(&p.stages[1], calm(&done[..1], &stopped)) else {
            panic!("deploy must be skipped after a failed build");
        };
        assert_eq!(why, "not run: stage `build` failed");
        // The rollback reads the deploy's outputs, and the deploy never ran.
        let Decision::Skip(why) = decide(&p.stages[2], calm(&done, &stopped)) else {
            panic!("rollback without a deploy must be skipped");
        };
        assert!(why.contains("needs `deploy/*`"), "{why}");
        assert!(why.contains("did not run"), "{why}");
        assert_eq!(decide(&p.stages[3], calm(&done, &stopped)), Decision::Run);
        assert_eq!(run_status(None, &stopped), RunStatus::Failed);
    }

    #[test]
    fn an_on_failure_stage_is_skipped_when_all_went_well() {
        let p = pipeline();
        let done = records(&p, &[StageStatus::Succeeded, StageStatus::Succeeded]);
        let none: StoppedBy = None;
        assert_eq!(
            decide(&p.stages[2], calm(&done, &none)),
            Decision::Skip("not run: no earlier stage failed".into())
        );
        assert_eq!(run_status(None, &none), RunStatus::Succeeded);
        assert_eq!(
            run_status(Some("deploy"), &none),
            RunStatus::AwaitingApproval
        );
    }

    #[test]
    fn an_interrupt_or_a_broken_plugin_skips_everything_left() {
        let p = pipeline();
        let none: StoppedBy = None;
        let interrupted = Situation {
            interrupted: true,
            approved: true,
            ..calm(&[], &none)
        };
        assert_eq!(
            decide(&p.stages[3], interrupted),
            Decision::Skip("not run: the run was interrupted".into())
        );
        let broken = Situation {
            preflight_failed: true,
            ..calm(&[], &none)
        };
        assert!(matches!(decide(&p.stages[0], broken), Decision::Skip(_)));
    }
}
