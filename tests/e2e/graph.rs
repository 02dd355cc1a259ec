//! The stage graph: independent stages run side by side, a failure cancels what runs beside it
//! and skips what depends on it, retries and allowed failures, and runs that survive `kill -9`.

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::{RunReport, StageRecord, StageStatus};

use crate::support::{Outcome, Pipeline, Sandbox, Stage, processes_with, table};

/// The `exec` stage running `sh -c SCRIPT` in its output folder (the script goes there itself:
/// programs never start in a folder plugins fill); fails when the script does.
fn sh(name: &str, script: &str) -> Stage {
    Stage::new(name, "exec")
        .allow("exec", ["sh"])
        .config("program", "sh")
        .config("args", ["-c", &format!("cd \"$SLUICE_OUT\" && {script}")])
}

fn code() -> Stage {
    Stage::new("code", "emit").config("files", table([("a.txt", "alpha\n")]))
}

/// When a stage ran, from its record: (start, end) in seconds since the epoch.
fn interval(record: &StageRecord) -> (f64, f64) {
    let start = record
        .started_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    (start, start + record.duration_ms.unwrap_or(0.0) / 1000.0)
}

/// Whether two stages ran at the same time for more than the timestamps' resolution (start
/// times are recorded to the millisecond).
fn overlap(a: &StageRecord, b: &StageRecord) -> bool {
    const SLACK: f64 = 0.005;
    let ((a0, a1), (b0, b1)) = (interval(a), interval(b));
    a0 + SLACK < b1 && b0 + SLACK < a1
}

/// Runs `pipeline` with extra arguments (`--jobs N`).
fn run_with(sandbox: &Sandbox, pipeline: &Pipeline, extra: &[&str]) -> Result<Outcome> {
    let file = sandbox.write(pipeline)?;
    let report_path = sandbox.path().join("graph-report.json");
    let file = file.display().to_string();
    let report_arg = report_path.display().to_string();
    let mut args = vec![
        "run",
        file.as_str(),
        "--format",
        "plain",
        "--report",
        &report_arg,
    ];
    args.extend_from_slice(extra);
    let ran = sandbox.sluice(&args)?;
    let report =
        RunReport::read(&report_path).map_err(|err| anyhow::anyhow!("{err:#}\n{}", ran.stderr))?;
    Ok(Outcome::from((ran, report)))
}

fn diamond() -> Pipeline {
    Pipeline::new("diamond")
        .stage(code())
        .stage(sh("left", "sleep 1; echo left > left.txt").inputs(["code/*"]))
        .stage(sh("right", "sleep 1; echo right > right.txt").inputs(["code/*"]))
        .stage(Stage::new("join", "checksum").inputs(["left/*", "right/*"]))
}

#[test]
fn a_diamond_runs_its_two_middle_stages_at_the_same_time() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run = run_with(&sandbox, &diamond(), &["--jobs", "2"])?;
    run.assert_stages(
        exit_codes::SUCCESS,
        &[
            ("code", StageStatus::Succeeded),
            ("left", StageStatus::Succeeded),
            ("right", StageStatus::Succeeded),
            ("join", StageStatus::Succeeded),
        ],
    );
    assert!(
        overlap(run.stage("left"), run.stage("right")),
        "the middle stages did not overlap:\n{}",
        run.describe()
    );
    assert!(!overlap(run.stage("code"), run.stage("left")));
    assert!(!overlap(run.stage("right"), run.stage("join")));
    assert_eq!(run.stage("join").depends_on, ["left", "right"]);
    // Each middle stage saw only what it names: code's file, not the other branch's.
    assert_eq!(run.stage("left").inputs, ["code/a.txt"]);
    // One at a time, they do not overlap.
    let run = run_with(&sandbox, &diamond(), &["--jobs", "1"])?;
    assert_eq!(run.ran.code, exit_codes::SUCCESS, "{}", run.describe());
    assert!(!overlap(run.stage("left"), run.stage("right")));
    Ok(())
}

#[test]
fn a_failing_branch_cancels_its_running_sibling_and_skips_dependants() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // A sleep of about two seconds, with a length no other process has.
    let mark = format!("sleep 2.{}1", std::process::id() % 100_000);
    let pipeline = |fail_fast: bool| {
        Pipeline::new("branches")
            .set("fail_fast", fail_fast)
            .stage(code())
            .stage(sh("slow", &format!("{mark}; echo done > slow.txt")).inputs(["code/*"]))
            .stage(sh("broken", "sleep 0.3; exit 3").inputs(["code/*"]))
            .stage(Stage::new("join", "checksum").inputs(["slow/*", "broken/*"]))
            .stage(Stage::new("after-slow", "checksum").inputs(["slow/*"]))
    };
    let run = run_with(&sandbox, &pipeline(true), &["--jobs", "4"])?;
    run.assert_stages(
        exit_codes::STAGE_FAILED,
        &[
            ("code", StageStatus::Succeeded),
            ("slow", StageStatus::Cancelled),
            ("broken", StageStatus::Failed),
            ("join", StageStatus::Skipped),
            ("after-slow", StageStatus::Skipped),
        ],
    )
    .assert_message("slow", &["cancelled: stage `broken` failed (fail_fast)"]);
    assert!(
        processes_with(&mark).is_empty(),
        "the cancelled stage's program lives on"
    );
    let slow = run.stage("slow").duration_ms.unwrap_or(f64::MAX);
    assert!(slow < 20_000.0, "cancelled after {slow} ms, not at once");

    // Without fail_fast, the sibling finishes and only the failure's dependants are skipped.
    let mark_run = pipeline(false);
    let run = run_with(&sandbox, &mark_run, &["--jobs", "4"])?;
    run.assert_stages(
        exit_codes::STAGE_FAILED,
        &[
            ("code", StageStatus::Succeeded),
            ("slow", StageStatus::Succeeded),
            ("broken", StageStatus::Failed),
            ("join", StageStatus::Skipped),
            ("after-slow", StageStatus::Succeeded),
        ],
    )
    .assert_message("join", &["it needs stage `broken`, which failed"]);
    Ok(())
}

#[test]
fn retries_try_again_and_allowed_failures_let_the_run_succeed() -> Result<()> {
    let sandbox = Sandbox::new()?;
    std::fs::create_dir(sandbox.path().join("ws"))?;
    // Fails twice, then passes: a flaky test.
    let flaky = Stage::new("flaky", "exec")
        .allow("exec", ["sh"])
        .allow("workspace", "write")
        .set("retries", 2)
        .config("program", "sh")
        .config(
            "args",
            [
                "-c",
                "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]",
            ],
        )
        .config("cwd", "/workspace");
    let run = run_with(
        &sandbox,
        &Pipeline::new("retry")
            .set("workspace", "ws")
            .stage(code())
            .stage(flaky),
        &[],
    )?;
    assert_eq!(run.ran.code, exit_codes::SUCCESS, "{}", run.describe());
    let flaky = run.stage("flaky");
    assert_eq!(flaky.status, StageStatus::Succeeded);
    assert_eq!(flaky.earlier_attempts.len(), 2, "{flaky:?}");
    assert!(
        flaky
            .earlier_attempts
            .iter()
            .all(|a| a.status == StageStatus::Failed)
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("ws/count"))?.trim(),
        "3"
    );
    run.ran
        .assert_stderr(&["attempt 1 of 3 failed", "attempt 2 of 3 failed"]);

    // Allowed to fail: the run goes on and succeeds, and says so.
    let run = run_with(
        &sandbox,
        &Pipeline::new("allowed")
            .stage(code())
            .stage(sh("lint", "exit 1").set("allow_failure", true))
            .stage(Stage::new("release", "checksum")),
        &[],
    )?;
    run.assert_stages(
        exit_codes::SUCCESS,
        &[
            ("code", StageStatus::Succeeded),
            ("lint", StageStatus::Failed),
            ("release", StageStatus::Succeeded),
        ],
    );
    assert!(run.stage("lint").failure_allowed);
    run.ran.assert_stderr(&["allowed to fail: lint"]);
    Ok(())
}

#[test]
fn a_run_killed_mid_stage_resumes_without_redoing_finished_stages() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // About two seconds: long enough to be killed in, short enough to finish on resume.
    let mark = format!("sleep 2.{}2", std::process::id() % 100_000);
    let file = sandbox.write(
        &Pipeline::new("crash")
            .stage(code())
            .stage(sh("slow", &format!("{mark}; echo done > slow.txt")))
            .stage(Stage::new("release", "checksum")),
    )?;
    let file = file.display().to_string();
    let mut sluice = sandbox
        .command(&["run", &file, "--format", "plain"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let started = std::time::Instant::now();
    let sleeping = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .any(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(&mark)
            })
    };
    while !sleeping() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sluice.kill()?;
    sluice.wait()?;
    anyhow::ensure!(
        started.elapsed().as_secs() < 60,
        "the slow stage never started"
    );
    assert!(
        processes_with(&mark).is_empty(),
        "a program outlived sluice"
    );

    // The journal says where it stopped.
    let run_dir = std::fs::read_dir(sandbox.runs_dir())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("report.json").is_file())
        .ok_or_else(|| anyhow::anyhow!("no run folder"))?;
    let journal = RunReport::read(&run_dir.join("report.json"))?;
    let statuses: Vec<StageStatus> = journal.stages.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StageStatus::Succeeded,
            StageStatus::Running,
            StageStatus::Pending
        ]
    );
    let code_before = journal.stages[0].clone();
    let code_file = run_dir.join(&code_before.outputs[0].path);
    let modified = std::fs::metadata(&code_file)?.modified()?;

    sandbox
        .sluice(&["runs"])?
        .assert_exit(exit_codes::SUCCESS)
        .assert_stdout(&[&journal.run_id, "interrupted"]);

    let resumed = sandbox.sluice(&["resume", &journal.run_id, "--format", "plain"])?;
    resumed.assert_exit(exit_codes::SUCCESS);
    let report = RunReport::read(&run_dir.join("report.json"))?;
    let statuses: Vec<StageStatus> = report.stages.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StageStatus::Succeeded; 3]);
    // The finished stage was not run again, and its artifact was not rewritten.
    assert_eq!(report.stages[0].started_at, code_before.started_at);
    assert_eq!(std::fs::metadata(&code_file)?.modified()?, modified);
    assert_eq!(report.resumed_at.len(), 1);
    sandbox
        .sluice(&["runs"])?
        .assert_stdout(&[&journal.run_id, "succeeded"]);
    Ok(())
}

#[test]
fn a_two_by_two_matrix_makes_four_instances_with_their_own_outputs() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let matrix = Stage::new("build", "emit")
        .inputs(["code/*"])
        .config(
            "files",
            table([("out.txt", "${matrix.target} ${matrix.profile}\n")]),
        )
        .set(
            "matrix",
            table([
                ("target", crate::support::Toml::from(["x86_64", "aarch64"])),
                ("profile", crate::support::Toml::from(["debug", "release"])),
            ]),
        );
    let pipeline = Pipeline::new("matrix")
        .stage(code())
        .stage(matrix)
        .stage(Stage::new("pack", "checksum").inputs(["build/*"]))
        .stage(Stage::new("one", "checksum").inputs(["build-aarch64-release/out.txt"]));
    let run = run_with(&sandbox, &pipeline, &["--jobs", "4"])?;
    assert_eq!(run.ran.code, exit_codes::SUCCESS, "{}", run.describe());
    let instances = [
        ("build-x86_64-debug", "x86_64 debug\n"),
        ("build-x86_64-release", "x86_64 release\n"),
        ("build-aarch64-debug", "aarch64 debug\n"),
        ("build-aarch64-release", "aarch64 release\n"),
    ];
    let mut digests = Vec::new();
    for (name, content) in instances {
        let record = run.stage(name);
        assert_eq!(record.status, StageStatus::Succeeded, "{name}");
        assert_eq!(record.matrix.len(), 2, "{name}");
        let file = run.run_dir().join(&record.outputs[0].path);
        assert_eq!(std::fs::read_to_string(file)?, content);
        digests.push(record.outputs[0].sha256.clone());
    }
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 4, "four distinct outputs");
    assert_eq!(
        run.stage("pack").inputs.len(),
        4,
        "`build/*` means every instance"
    );
    assert_eq!(run.stage("one").inputs, ["build-aarch64-release/out.txt"]);
    Ok(())
}

/// Two independent branches: `*-src` emits a file, `*-up` upper-cases it.
fn two_branches(left_text: &str) -> Pipeline {
    // `inputs = []`: a source stage reads nothing, so it waits for nothing.
    let src = |name: &str, file: &str, text: &str| {
        Stage::new(name, "emit")
            .inputs::<0>([])
            .config("files", table([(file, text)]))
    };
    let up = |name: &str, from: &str| {
        Stage::new(name, "text-transform")
            .inputs([from])
            .config("op", "upper")
    };
    Pipeline::new("branches")
        .stage(src("left-src", "a.txt", left_text))
        .stage(src("right-src", "b.txt", "right side\n"))
        .stage(up("left-up", "left-src/*"))
        .stage(up("right-up", "right-src/*"))
}

/// Which stages were served from the stage cache.
fn hits(run: &Outcome) -> Vec<&str> {
    run.report
        .stages
        .iter()
        .filter(|s| s.cache.as_ref().is_some_and(|c| c.hit))
        .map(|s| s.name.as_str())
        .collect()
}

#[test]
fn an_unchanged_run_comes_from_the_stage_cache_and_a_change_reruns_only_what_it_affects()
-> Result<()> {
    let sandbox = Sandbox::new()?;
    let first = run_with(&sandbox, &two_branches("left side\n"), &[])?;
    assert_eq!(first.ran.code, exit_codes::SUCCESS, "{}", first.describe());
    assert!(hits(&first).is_empty());
    let stored: Vec<bool> = first
        .report
        .stages
        .iter()
        .map(|s| s.cache.is_some())
        .collect();
    assert_eq!(stored, [true; 4], "every stage was stored");

    let second = run_with(&sandbox, &two_branches("left side\n"), &[])?;
    assert_eq!(
        hits(&second),
        ["left-src", "right-src", "left-up", "right-up"]
    );
    for (a, b) in first.report.stages.iter().zip(&second.report.stages) {
        assert_eq!(
            a.outputs.iter().map(|o| &o.sha256).collect::<Vec<_>>(),
            b.outputs.iter().map(|o| &o.sha256).collect::<Vec<_>>()
        );
        assert!(second.run_dir().join(&b.outputs[0].path).is_file());
    }
    second.ran.assert_stderr(&["cached (key "]);

    // A changed input: its branch runs again, the other is still served from the cache.
    let third = run_with(&sandbox, &two_branches("LEFT CHANGED\n"), &[])?;
    assert_eq!(hits(&third), ["right-src", "right-up"]);
    let up = &third.stage("left-up").outputs[0];
    assert_eq!(
        std::fs::read_to_string(third.run_dir().join(&up.path))?,
        "LEFT CHANGED\n"
    );

    // A corrupt entry is a miss, never a wrong output.
    let key = third
        .stage("right-up")
        .cache
        .as_ref()
        .map(|c| c.key.clone())
        .unwrap_or_default();
    let entry = sandbox.path().join("stage-cache").join(&key).join("files");
    for file in std::fs::read_dir(&entry)?.flatten() {
        std::fs::write(file.path(), "poisoned")?;
    }
    let fourth = run_with(&sandbox, &two_branches("LEFT CHANGED\n"), &[])?;
    assert!(
        !hits(&fourth).contains(&"right-up"),
        "a poisoned entry was used"
    );
    let up = &fourth.stage("right-up").outputs[0];
    assert_eq!(
        std::fs::read_to_string(fourth.run_dir().join(&up.path))?,
        "RIGHT SIDE\n"
    );

    // --no-stage-cache runs everything.
    let fifth = run_with(
        &sandbox,
        &two_branches("LEFT CHANGED\n"),
        &["--no-stage-cache"],
    )?;
    assert!(hits(&fifth).is_empty());
    Ok(())
}
