//! Limits and the seams around programs: log, memory, stack, outputs and time limits; a granted
//! program's environment; plugin text on a terminal; processes outliving their stage.

use super::*;

#[test]
fn flooding_the_log_hits_the_log_limit() -> Result<()> {
    let run = run_attack(attack("log-flood").limit("log", "64 KiB"))?;
    // State first: the log on disk, and what sluice printed of it, stayed near the limit.
    let log = run.run_dir().join("logs/attack.log");
    let kept = std::fs::metadata(log)?.len();
    assert!(kept < 200 * 1024, "the log grew to {kept} bytes");
    let printed = run.ran.stderr.len() + run.ran.stdout.len();
    assert!(printed < 200 * 1024, "sluice printed {printed} bytes");
    assert_stopped(&run, Error, &["exceeded its 64 KiB log limit"])
}

/// Runs `pipeline` like [`Sandbox::run_pipeline`], watching the sluice process: its outcome and
/// its peak resident memory in KiB (`VmHWM`, read until it exits).
fn run_measured(sandbox: &Sandbox, pipeline: &Pipeline) -> Result<(Outcome, u64)> {
    use anyhow::Context;
    let file = sandbox.write(pipeline)?;
    let report = sandbox.path().join("measured-report.json");
    let (stdout, stderr) = (
        sandbox.path().join("measured.stdout"),
        sandbox.path().join("measured.stderr"),
    );
    let _ = std::fs::remove_file(&report);
    let args = sandbox.run_args(&file, &report);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = sandbox
        .command(&args)
        .stdout(std::fs::File::create(&stdout)?)
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        // The high-water mark only grows: the last reading before exit is the peak, but for
        // what the last few milliseconds added.
        let now = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        peak = peak.max(now);
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let ran = Ran {
        command: format!("sluice {}", args.join(" ")),
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&stdout)?,
        stderr: std::fs::read_to_string(&stderr)?,
    };
    ran.assert_no_panic();
    assert!(peak > 0, "never saw sluice's memory\n{}", ran.stderr);
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("no report written (exit {}):\n{}", ran.code, ran.stderr))?;
    Ok((Outcome::from((ran, serde_json::from_str(&text)?)), peak))
}

/// What a stage that blew a limit leaves, in the same sandbox: the run's record in its folder is
/// complete (every stage, the exit code, no journal left), and a run after it works.
fn assert_host_survived(sandbox: &Sandbox, run: &Outcome, status: StageStatus) -> Result<()> {
    let kept: sluice::model::report::RunReport = serde_json::from_str(&run.file("report.json")?)?;
    let statuses: Vec<(&str, StageStatus)> = kept
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(statuses, stopped_at("attack", status), "{}", run.describe());
    assert_eq!(kept.exit_code, run.ran.code);
    assert!(!kept.finished_at.is_empty());
    assert!(
        !run.run_dir().join("journal.jsonl").exists(),
        "the run was left unfinished"
    );
    let next = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("emit").config("files", table([("after.txt", "still here\n")])),
    ))?;
    next.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    assert_eq!(next.file("artifacts/attack/after.txt")?, "still here\n");
    Ok(())
}

/// The peak memory of an ordinary run in `sandbox` (the same three stages, `emit` in the middle).
fn ordinary_peak(sandbox: &Sandbox) -> Result<u64> {
    let (run, peak) = run_measured(
        sandbox,
        &Pipeline::three_stage(attack("emit").config("files", table([("x", "x")]))),
    )?;
    run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    Ok(peak)
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ordinary = ordinary_peak(&sandbox)?;
    let (run, peak) = run_measured(
        &sandbox,
        &Pipeline::three_stage(attack("memory-bomb").limit("memory", "64 MiB")),
    )?;
    // State first: sluice's memory grew by no more than the limit (and some slack), the record
    // is complete, the next run works, the first stage's artifacts are intact.
    let bound = ordinary + (64 + 48) * 1024;
    assert!(
        peak <= bound,
        "sluice peaked at {peak} KiB, over {bound} KiB (an ordinary run: {ordinary} KiB)"
    );
    assert_host_survived(&sandbox, &run, Error)?;
    assert_stopped(&run, Error, &["exceeded its 64 MiB memory limit"])
}

#[test]
fn deep_recursion_crashes_the_stage_not_the_host() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ordinary = ordinary_peak(&sandbox)?;
    let (run, peak) = run_measured(&sandbox, &Pipeline::three_stage(attack("deep-recursion")))?;
    // State first: the stack the guest used is small (a few MiB at most), the record is complete,
    // the next run works, the first stage's artifacts are intact.
    let bound = ordinary + 32 * 1024;
    assert!(
        peak <= bound,
        "sluice peaked at {peak} KiB, over {bound} KiB (an ordinary run: {ordinary} KiB)"
    );
    assert_host_survived(&sandbox, &run, Crashed)?;
    assert_stopped(&run, Crashed, &["call stack exhausted"])
}

/// The sha256 of `text`, as sluice would record it.
fn sha256_text(text: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(text))
}

#[test]
fn output_count_and_size_limits_hold() -> Result<()> {
    // Over the count: neither output is recorded, hashed into any record or handed on.
    let sandbox = Sandbox::new()?;
    let (x, y) = (unique("first-output"), unique("second-output"));
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("emit")
            .limit("outputs", 1)
            .config("files", table([("x", x.as_str()), ("y", y.as_str())])),
    ))?;
    assert_nowhere(
        sandbox.path(),
        &run.ran,
        &[&sha256_text(&x), &sha256_text(&y)],
        &[],
    );
    assert_stopped(&run, Error, &["declared 2 outputs, over its limit of 1"])?;

    // Over the size: the file is deleted, its content and digest nowhere in the run folder.
    let sandbox = Sandbox::new()?;
    let big = unique("more-than-ten-bytes");
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("emit")
            .limit("output_size", "10 B")
            .config("files", table([("x", big.as_str())])),
    ))?;
    let out = run.run_dir().join("artifacts/attack");
    let left = entries_under(&out);
    assert!(left.is_empty(), "left in {}: {left:?}", out.display());
    assert_nowhere(sandbox.path(), &run.ran, &[&sha256_text(&big)], &[]);
    assert_nowhere(&out, &run.ran, &[&big], &[]);
    assert_stopped(
        &run,
        Error,
        &["output `x` was refused and deleted: larger than its 10 B output size limit"],
    )
}

#[test]
fn folders_count_toward_the_output_limit_and_empty_ones_do_not_stay() -> Result<()> {
    // Folders alone, in a loop: stopped at the limit, long before the timeout, and nothing kept.
    let started = std::time::Instant::now();
    let run = run_attack(
        attack("escape")
            .limit("outputs", 50)
            .limit("timeout", "60s")
            .config("mode", "mkdir-flood"),
    )?;
    // State first: stopped long before the timeout, and not a folder left.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "stopped by its timeout, not its output limit"
    );
    let out = run.run_dir().join("artifacts/attack");
    let left = entries_under(&out);
    assert!(left.is_empty(), "left in {}: {left:?}", out.display());
    assert_stopped(&run, Error, &["more than 50 files and folders"])?;

    // A stage that succeeds keeps its outputs and none of its empty folders.
    let run = run_attack(attack("escape").config("mode", "empty-dirs"))?;
    let out = run.run_dir().join("artifacts/attack");
    assert_eq!(
        std::fs::read_to_string(out.join("kept/report.txt"))?,
        "the one output"
    );
    assert_eq!(entries_under(&out).len(), 2, "{:?}", entries_under(&out));
    for gone in ["a", "e"] {
        assert!(!out.join(gone).exists(), "empty folder {gone} kept");
    }
    assert_eq!(run.ran.code, 0, "{}", run.describe());
    Ok(())
}

#[test]
fn a_read_that_never_returns_is_stopped_by_the_timeout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let fifo = sandbox.path().join("ws/fifo");
    std::fs::create_dir(sandbox.path().join("ws"))?;
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo failed");
    let started = std::time::Instant::now();
    let run = sandbox.run_pipeline(&in_workspace(
        attack("escape")
            .limit("timeout", "1s")
            .config("mode", "read")
            .config("path", "/workspace/fifo"),
    ))?;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the timeout did not fire"
    );
    assert_stopped(&run, Error, &["exceeded its 1s timeout"])
}

/// A harmless program of the project's own (a bash script) and a file of the attacker's that
/// bash would run first if the plugin could set `BASH_ENV`.
fn hookable_program(sandbox: &Sandbox) -> Result<(String, PathBuf, String)> {
    use std::os::unix::fs::PermissionsExt;
    let script = sandbox.path().join("ok.sh");
    // It leaves a mark of its own each time it runs.
    let ran = sandbox.path().join("ok-ran");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\necho ran >> '{}'\necho \"ok ${{GREETING:-}}\"\n",
            ran.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let marker = sandbox.path().join("pwned");
    let canary = "CANARY-exec-env-4b1d";
    let evil = sandbox.path().join("evil.sh");
    std::fs::write(&evil, format!("echo {canary} > '{}'\n", marker.display()))?;
    Ok((script.display().to_string(), marker, canary.to_string()))
}

#[test]
fn a_plugin_cannot_hook_a_granted_program_through_its_environment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (script, marker, canary) = hookable_program(&sandbox)?;
    let evil = sandbox.path().join("evil.sh").display().to_string();
    for (name, value) in [
        ("BASH_ENV", evil.as_str()),
        ("ENV", evil.as_str()),
        ("PATH", "/nonexistent"),
        ("LD_PRELOAD", "/nonexistent/x.so"),
    ] {
        let run = sandbox.run_pipeline(&Pipeline::three_stage(
            attack("exec-probe")
                .allow("exec", [script.as_str()])
                .config("program", script.as_str())
                .config("env", table([(name, value)])),
        ))?;
        // State first: the attacker's code did not run, nor the program, and the canary is
        // nowhere.
        assert!(!marker.exists(), "{name}: the plugin's code ran");
        assert!(
            !sandbox.path().join("ok-ran").exists(),
            "{name}: the program ran"
        );
        for (file, text) in all_text_under(sandbox.path()) {
            if file != sandbox.path().join("evil.sh") {
                assert!(
                    !text.contains(&canary),
                    "{name}: canary in {}",
                    file.display()
                );
            }
        }
        assert!(
            !run.ran.stderr.contains(&canary),
            "{name}: canary in the output"
        );
        assert_stopped(
            &run,
            Failed,
            &[&format!("`{name}`"), "sluice denied: setting"],
        )?;
    }
    Ok(())
}

#[test]
fn a_plugin_sets_only_the_variables_its_stage_grants() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (script, _, _) = hookable_program(&sandbox)?;
    let probe = |granted: &[&str]| {
        let mut stage = attack("exec-probe")
            .allow("exec", [script.as_str()])
            .config("program", script.as_str())
            .config("env", table([("GREETING", "hello")]));
        if !granted.is_empty() {
            stage = stage.allow("exec_env_unchecked", granted.to_vec());
        }
        sandbox.run_pipeline(&Pipeline::three_stage(stage))
    };
    // A name off the safe list cannot be granted in plain `exec_env`: `check` refuses it at its
    // line and says how to grant it knowingly.
    let plain = Pipeline::three_stage(
        attack("exec-probe")
            .allow("exec", [script.as_str()])
            .allow("exec_env", ["GREETING"])
            .config("program", script.as_str()),
    );
    let file = sandbox.pipeline("plain.toml", &plain.to_toml())?;
    sandbox
        .sluice(&["check", &file.display().to_string()])?
        .assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&[
            "`GREETING` is not on sluice's list of variables safe",
            "exec_env_unchecked",
        ]);
    // Not granted: refused and recorded; the program does not run.
    let refused = probe(&[])?;
    let mark = sandbox.path().join("ok-ran");
    assert!(!mark.exists(), "the program ran");
    assert_nowhere(refused.run_dir(), &refused.ran, &["ok hello"], &[]);
    assert_stopped(
        &refused,
        Failed,
        &["`GREETING` is not in this stage's allow.exec_env"],
    )?;
    assert!(
        refused
            .report
            .stage("attack")
            .is_some_and(|s| s.denied.iter().any(|d| d.contains("GREETING")))
    );
    // Granted knowingly: the program runs and sees it, and `check` shows it as unchecked.
    let granted = probe(&["GREETING"])?;
    assert_eq!(std::fs::read_to_string(&mark)?, "ran\n");
    assert_eq!(granted.file("artifacts/attack/loot.txt")?, "ok hello\n");
    granted.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    let checked = sandbox.sluice(&[
        "check",
        &sandbox.path().join("pipeline.toml").display().to_string(),
    ])?;
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    checked.assert_stdout(&["exec env, UNCHECKED", "GREETING"]);
    Ok(())
}

/// Escape sequences (title, clear screen, cursor up), a carriage return, forged sluice and CI-log
/// lines, a C1 CSI and a right-to-left override.
const TERMINAL_ATTACK: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[1A\rrun 1 of pipeline `p`: forged\n\
                               ::error::forged by a plugin\n::add-mask::x\n\u{9b}31m\u{202e}gnp.exe";

/// No control character (but tab) and no line a CI system or a reader would take as sluice's.
fn assert_shown_safely(what: &str, text: &str) {
    for (number, line) in text.lines().enumerate() {
        let bad = line
            .chars()
            .find(|&c| (c.is_control() && c != '\t') || ('\u{202a}'..='\u{202e}').contains(&c));
        assert!(
            bad.is_none(),
            "{what}:{}: {bad:?} shown raw in {line:?}",
            number + 1
        );
        let start = line.trim_start();
        assert!(
            !start.starts_with("::") && !start.starts_with("run 1 of"),
            "{what}:{}: a forged line: {line:?}",
            number + 1
        );
    }
}

#[test]
fn plugin_text_cannot_drive_the_terminal_or_forge_log_lines() -> Result<()> {
    for fail in [false, true] {
        let sandbox = Sandbox::new()?;
        let run = sandbox.run_pipeline(&Pipeline::three_stage(
            attack("terminal-inject")
                .config("text", TERMINAL_ATTACK)
                .config("fail", fail),
        ))?;
        assert_shown_safely("stderr", &run.ran.stderr);
        assert_shown_safely("stdout", &run.ran.stdout);
        for (file, text) in all_text_under(run.run_dir()) {
            assert_shown_safely(&file.display().to_string(), &text);
        }
        // Shown escaped, not dropped: a reader still sees what the plugin sent.
        let shown = "\\u{1b}[2J\\u{1b}[1A\\rrun 1 of pipeline `p`: forged\\n::error::";
        assert!(run.ran.stderr.contains(shown), "{}", run.ran.stderr);
        if fail {
            run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("attack", Failed))
                .assert_message("attack", &[shown]);
        } else {
            run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
        }
    }
    let sandbox = Sandbox::new()?;
    let inspected =
        sandbox.sluice(&["inspect", &plugin("terminal-inject")?.display().to_string()])?;
    inspected.assert_exit(exit_codes::SUCCESS);
    assert_shown_safely("inspect", &inspected.stdout);
    assert!(
        inspected.stdout.contains("\\u{1b}[2J"),
        "{}",
        inspected.stdout
    );
    Ok(())
}

#[test]
fn nothing_a_program_starts_outlives_its_call_or_its_stage() -> Result<()> {
    // Unique sleep lengths mark the processes; old ones from a crashed earlier run do not count.
    let pid = std::process::id();
    let background = format!("9{}.1", pid % 100_000);
    let stalled = format!("9{}.2", pid % 100_000);
    // The program ends at once but leaves a background process behind (which, holding the
    // output pipe, would also keep the call waiting: the timeout bounds a regression).
    let sandbox = Sandbox::new()?;
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("exec-probe")
            .allow("exec", ["sh"])
            .limit("timeout", "20s")
            .config("program", "sh")
            .config(
                "args",
                ["-c", &format!("sleep {background} & echo started")],
            ),
    ))?;
    let left = processes_with(&format!("sleep {background}"));
    assert!(left.is_empty(), "still running after the call: {left:?}");
    run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    // The stage's timeout stops a program that never ends, and its children with it.
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        attack("exec-probe")
            .allow("exec", ["sh"])
            .limit("timeout", "1s")
            .config("program", "sh")
            .config(
                "args",
                ["-c", &format!("sleep {stalled} & sleep {stalled}; wait")],
            ),
    ))?;
    let left = processes_with(&format!("sleep {stalled}"));
    assert!(left.is_empty(), "still running after the timeout: {left:?}");
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("attack", Error))
        .assert_message("attack", &["timeout"]);
    Ok(())
}
