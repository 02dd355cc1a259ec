//! The sandbox's seams, read as a red team would: each test makes the attack and then checks
//! the state it would have changed (files, digests, listeners, processes), not the plugin's word.

use std::path::Path;

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus::{Error, Failed, Succeeded};

use crate::support::{
    Pipeline, Ran, Sandbox, Stage, all_text_under, processes_with, sha256_of, stopped_at, table,
};

/// `exec-probe` running `sh -c SCRIPT` in its output folder (the script goes there itself), under
/// `timeout`.
fn shell(script: &str, timeout: &str) -> Stage {
    Stage::new("attack", "exec-probe")
        .allow("exec", ["sh"])
        .limit("timeout", timeout)
        .config("program", "sh")
        .config("args", ["-c", &format!("cd \"$SLUICE_OUT\" && {script}")])
}

/// A marker unique to this test process, to find what it started in `/proc`.
fn marker(what: &str) -> String {
    format!("{what}-{}", std::process::id())
}

/// Every entry under `dir` that is not a regular file or a folder.
fn special_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(entry.path()),
                Ok(kind) if kind.is_file() => {}
                _ => found.push(entry.path()),
            }
        }
    }
    found
}

#[test]
fn links_and_special_files_left_in_outputs_are_removed_and_reported() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let run = sandbox.run_pipeline(&Pipeline::three_stage(shell(
        "mkfifo pipe && ln -s /etc/passwd passwd && mkdir d && ln -s ../../../.. d/up && echo ok",
        "30s",
    )))?;
    // State first: no link or special file anywhere in the run folder, and nothing a link led to
    // was copied in.
    let left = special_entries(run.run_dir());
    assert!(left.is_empty(), "left behind: {left:?}");
    for (file, text) in all_text_under(run.run_dir()) {
        assert!(
            !text.contains("root:x:0:"),
            "/etc/passwd in {}",
            file.display()
        );
    }
    run.assert_stages(
        exit_codes::SUCCESS,
        &[
            ("code", Succeeded),
            ("attack", Succeeded),
            ("release", Succeeded),
        ],
    );
    let denied = run.stage("attack").denied.join("\n");
    for what in [
        "`pipe` in its output folder: a special file",
        "`passwd` in its output folder: a symlink (to `/etc/passwd`)",
        "`d/up` in its output folder: a symlink",
    ] {
        assert!(denied.contains(what), "{what} not in {denied}");
    }
    assert!(
        run.file("logs/attack.log")?
            .contains("sluice refused `pipe`")
    );
    Ok(())
}

#[test]
fn a_file_past_the_size_limit_is_stopped_while_written_and_removed() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // A sparse terabyte costs no disk, but no sweep may read it whole or give up and keep it;
    // then a writer that never pauses. Both are stopped at the limit, long before the timeout.
    let sparse = marker("sparse");
    let endless = marker("endless");
    for (script, mark) in [
        (
            format!(": {sparse}; truncate -s 1T big.bin; sleep 60"),
            &sparse,
        ),
        (format!(": {endless}; yes > big.txt"), &endless),
    ] {
        let run = sandbox.run_pipeline(&Pipeline::three_stage(
            shell(&script, "120s").limit("output_size", "1 MiB"),
        ))?;
        // State first: the file is gone, and so is every process that wrote it.
        let out = run.run_dir().join("artifacts/attack");
        assert!(
            std::fs::read_dir(&out)?.next().is_none(),
            "left in {}",
            out.display()
        );
        let left = processes_with(mark);
        assert!(left.is_empty(), "still running: {left:?}");
        assert!(run.stage("attack").outputs.is_empty());
        run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("attack", Error))
            .assert_message(
                "attack",
                &["wrote more than its 1 MiB output size limit and was stopped"],
            );
    }
    Ok(())
}

#[test]
fn creating_files_in_a_loop_is_stopped_at_the_file_limit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let mark = marker("files");
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        shell(
            &format!(": {mark}; i=0; while :; do i=$((i+1)); : > f$i; done"),
            "120s",
        )
        .limit("outputs", 50),
    ))?;
    // State first: not a file left, and the loop is not running.
    let out = run.run_dir().join("artifacts/attack");
    assert!(
        std::fs::read_dir(&out)?.next().is_none(),
        "left in {}",
        out.display()
    );
    let left = processes_with(&mark);
    assert!(left.is_empty(), "still running: {left:?}");
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("attack", Error))
        .assert_message(
            "attack",
            &["created more than 50 files and folders in its output folder"],
        );
    Ok(())
}

#[test]
fn a_program_flooding_the_log_is_stopped_at_the_log_limit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let mark = marker("flood");
    // `yes` never ends and never stops printing: only the log limit can stop it in time.
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        shell(&format!(": {mark}; yes"), "120s").limit("log", "1 MiB"),
    ))?;
    // State first: `yes` is not running, and each `y` line counts two bytes against the limit:
    // no more than the limit's worth is kept, or printed.
    let left = processes_with(&mark);
    assert!(left.is_empty(), "still running: {left:?}");
    let kept = run.file("logs/attack.log")?.lines().count();
    assert!(kept <= (1 << 20) / 2 + 10, "the log kept {kept} lines");
    let printed = run.ran.stderr.lines().count() + run.ran.stdout.lines().count();
    assert!(
        printed <= (1 << 20) / 2 + 100,
        "sluice printed {printed} lines"
    );
    run.assert_stages(exit_codes::STAGE_ERROR, &stopped_at("attack", Error))
        .assert_message("attack", &["exceeded its 1 MiB log limit"]);
    Ok(())
}

#[test]
fn killing_sluice_kills_every_program_its_stages_started() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // A sleep length no other process has marks what the stage started.
    let mark = format!("sleep 3{}.5", std::process::id() % 100_000);
    let file = sandbox.write(&Pipeline::three_stage(shell(
        &format!("{mark} & {mark}; wait"),
        "600s",
    )))?;
    let runs = sandbox.runs_dir();
    let said = sandbox.path().join("sluice.stderr");
    let mut sluice = sandbox
        .command(&[
            "run",
            &file.display().to_string(),
            "--format",
            "plain",
            "--runs-dir",
            &runs.display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&said)?)
        .spawn()?;
    let started = std::time::Instant::now();
    // The shell and its two sleeps; generous, as CI runs this beside 200 other sluices.
    while processes_with_now(&mark) < 3 && started.elapsed().as_secs() < 180 {
        if sluice.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if processes_with_now(&mark) < 3 {
        let _ = sluice.kill();
        let _ = sluice.wait();
        anyhow::bail!(
            "the stage never started its programs within {:?}; sluice said:\n{}",
            started.elapsed(),
            std::fs::read_to_string(&said).unwrap_or_default()
        );
    }
    sluice.kill()?; // SIGKILL: sluice gets no chance to clean up.
    sluice.wait()?;
    let left = processes_with(&mark);
    assert!(left.is_empty(), "outlived sluice: {left:?}");
    Ok(())
}

/// How many processes hold `marker` right now.
fn processes_with_now(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .filter(|bytes| {
            String::from_utf8_lossy(bytes)
                .replace('\0', " ")
                .contains(marker)
        })
        .count()
}

const PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEoLqWz3vTq0yXbF8hPd
Rk2JmG5uYs7QwE1nA9cVt4LpZxHsKfUeOiBaDy3M
-----END PRIVATE KEY-----";

#[test]
fn secrets_are_masked_across_lines_cuts_and_refusals() -> Result<()> {
    let sandbox = Sandbox::new()?;
    std::fs::write(sandbox.path().join("key.pem"), format!("{PEM}\n"))?;
    let key_lines: Vec<&str> = PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    // A multi-line key printed whole, and again in two writes with the long-line cut inside it.
    let run = sandbox.run_pipeline(
        &Pipeline::three_stage(
            Stage::new("attack", "secret-leak")
                .allow("secrets", ["KEY"])
                .config("name", "KEY")
                .config("pad", 16 * 1024 - 30),
        )
        .secret("KEY", table([("file", "key.pem")])),
    )?;
    run.assert_stages(
        exit_codes::SUCCESS,
        &[
            ("code", Succeeded),
            ("attack", Succeeded),
            ("release", Succeeded),
        ],
    );
    let texts = all_text_under(&sandbox.runs_dir());
    for line in &key_lines {
        // Half a line is as bad as a whole one.
        let half = &line[..line.len() / 2];
        for (file, text) in &texts {
            assert!(!text.contains(half), "key material in {}", file.display());
        }
        assert!(!run.ran.stdout.contains(half) && !run.ran.stderr.contains(half));
    }
    // A refused program line that carries a secret is recorded masked.
    let run = sandbox.run_pipeline_with_env(
        &Pipeline::three_stage(
            Stage::new("attack", "exec-probe")
                .config("program", "curl-s3cr3t-t0ken-in-a-name")
                .allow("exec", ["true"]),
        )
        .secret("TOKEN", table([("env", "CI_TEST_TOKEN")])),
        &[("CI_TEST_TOKEN", "s3cr3t-t0ken")],
    )?;
    // State first: the secret is in no file and nothing sluice printed; then what was recorded.
    for (file, text) in all_text_under(&sandbox.runs_dir()) {
        assert!(
            !text.contains("s3cr3t-t0ken"),
            "secret in {}",
            file.display()
        );
    }
    assert!(!run.ran.stdout.contains("s3cr3t-t0ken") && !run.ran.stderr.contains("s3cr3t-t0ken"));
    assert_eq!(run.stage("attack").denied, ["exec of `curl-***-in-a-name`"]);
    run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("attack", Failed));
    Ok(())
}

#[test]
fn provenance_trusts_the_phases_the_pipeline_gives_not_what_plugins_claim() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // `emit` calls itself a code stage and `checksum` a release stage; only the pipeline's
    // `phase =` may decide where the source commit and the release subjects come from.
    let pipeline = Pipeline::new("t")
        .stage(
            Stage::new("code", "emit")
                .phase("code")
                .config("files", table([("a.txt", "alpha\n")])),
        )
        .stage(Stage::new("forger", "emit").config(
            "files",
            table([("source.json", r#"{"gitCommit": "f0f0f0f0forged"}"#)]),
        ))
        .stage(Stage::new("impostor", "checksum").phase("test"))
        .stage(Stage::new("release", "checksum").phase("release"));
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(run.ran.code, exit_codes::SUCCESS, "{}", run.describe());
    let statement: serde_json::Value = serde_json::from_str(&run.file("provenance.intoto.json")?)?;
    assert!(
        !statement.to_string().contains("f0f0f0f0forged"),
        "{statement:#}"
    );
    let mut subjects: Vec<String> = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["digest"]["sha256"].as_str().map(str::to_string))
        .collect();
    let mut released: Vec<String> = run
        .stage("release")
        .outputs
        .iter()
        .map(|a| a.sha256.clone())
        .collect();
    subjects.sort();
    released.sort();
    assert_eq!(
        subjects, released,
        "subjects are the marked release's outputs only"
    );
    let impostor = &run.stage("impostor");
    assert_eq!(impostor.phase.as_deref(), Some("test"));
    assert_eq!(impostor.plugin.phase.as_deref(), Some("release"));
    // `check` shows the disagreement.
    let file = sandbox.write(&pipeline)?;
    sandbox
        .sluice(&["check", &file.display().to_string()])?
        .assert_exit(exit_codes::SUCCESS)
        .assert_stdout(&["the pipeline marks it `test`, its plugin says `release`"]);
    Ok(())
}

#[test]
fn run_state_inside_a_folder_a_stage_is_given_is_refused_before_anything_runs() -> Result<()> {
    let sandbox = Sandbox::new()?;
    std::fs::create_dir(sandbox.path().join("ws"))?;
    let writer = Stage::new("attack", "emit")
        .allow("workspace", "write")
        .config("files", table([("x.txt", "x")]));
    let file = sandbox.write(&Pipeline::three_stage(writer).set("workspace", "ws"))?;
    let inside = sandbox.path().join("ws/.sluice/runs");
    let ran = sandbox.sluice(&[
        "run",
        &file.display().to_string(),
        "--runs-dir",
        &inside.display().to_string(),
    ])?;
    // State first: nothing was created (nor written into the workspace); then what was said.
    assert!(
        !sandbox.path().join("ws/.sluice").exists(),
        "nothing was created"
    );
    assert!(!sandbox.path().join("ws/x.txt").exists(), "the stage ran");
    ran.assert_exit(exit_codes::INVALID_INPUT).assert_stderr(&[
        "stage `attack` is given its workspace",
        "which overlaps the runs folder",
        "--runs-dir",
    ]);
    // A granted folder around the plugin store is refused the same way.
    let around = Stage::new("attack", "emit").allow(
        "dirs",
        [table([("host", "."), ("guest", "/all"), ("mode", "read")])],
    );
    let file = sandbox.write(&Pipeline::three_stage(around))?;
    let ran = sandbox.sluice(&["run", &file.display().to_string()])?;
    assert!(!sandbox.runs_dir().exists(), "no run folder");
    ran.assert_exit(exit_codes::INVALID_INPUT)
        .assert_stderr(&["overlaps the"]);
    Ok(())
}

#[test]
fn a_program_cannot_write_through_its_inputs_into_published_artifacts() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // The program is handed its input's host path, as `${in}` gives it.
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        Stage::new("attack", "exec-probe")
            .allow("exec", ["sh"])
            .config("program", "sh")
            .config(
                "args",
                ["-c", r#"echo pwned > "$0"; cat "$0""#, "${in}/code/a.txt"],
            ),
    ))?;
    let code = &run.stage("code").outputs[0];
    let published = run.run_dir().join(&code.path);
    assert_eq!(std::fs::read_to_string(&published)?, "alpha\n");
    assert_eq!(sha256_of(&published)?, code.sha256);
    run.assert_stages(
        exit_codes::SUCCESS,
        &[
            ("code", Succeeded),
            ("attack", Succeeded),
            ("release", Succeeded),
        ],
    );
    Ok(())
}

#[test]
fn a_resumed_run_re_verifies_every_artifact_and_path_it_recorded() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let gated = Stage::new("ship", "checksum")
        .phase("release")
        .set("approval", "manual");
    let pipeline = Pipeline::new("t")
        .stage(
            Stage::new("code", "emit")
                .phase("code")
                .config("files", table([("a.txt", "alpha\n")])),
        )
        .stage(gated);
    let run = sandbox.run_pipeline(&pipeline)?;
    assert_eq!(
        run.ran.code,
        exit_codes::AWAITING_APPROVAL,
        "{}",
        run.describe()
    );
    let run_dir = run.run_dir().to_path_buf();
    let id = run.report.run_id.clone();
    let resume = || sandbox.sluice(&["resume", &id, "--approve", "ship", "--format", "plain"]);

    // What each stage did by the time the run waits for approval: `ship` has not run.
    let ship = run_dir.join("artifacts/ship");
    let shipped = || {
        std::fs::read_dir(&ship)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    };
    assert_eq!(shipped(), "", "ship ran before it was approved");
    let alpha = sha256_text("alpha\n");
    let recorded = run.stage("code").outputs[0].sha256.clone();
    assert_eq!(recorded, alpha);

    // An artifact changed while the run waited.
    let artifact = run_dir.join("artifacts/code/a.txt");
    std::fs::write(&artifact, "tampered\n")?;
    let ran = resume()?;
    // State first: nothing was built from the changed bytes, and the record still holds the
    // digest of what was published.
    // (The message names the changed file's digest; no output may hold it.)
    assert_eq!(shipped(), "", "ship ran on a changed artifact");
    let kept = run_record(&run_dir)?;
    assert_eq!(
        kept.stage("code").map(|s| s.outputs[0].sha256.clone()),
        Some(alpha.clone())
    );
    assert_ne!(kept.stage("ship").map(|s| s.status), Some(Succeeded));
    assert_ne!(ran.code, exit_codes::SUCCESS);
    ran.assert_stderr(&["artifact `code/a.txt` changed after it was published"]);
    std::fs::write(&artifact, "alpha\n")?;

    // A record that points outside the run folder.
    let report_file = run_dir.join("report.json");
    let original = std::fs::read_to_string(&report_file)?;
    std::fs::write(
        &report_file,
        original.replace("\"artifacts/code/a.txt\"", "\"../../../../etc/passwd\""),
    )?;
    let ran = resume()?;
    // State first: nothing was built from the file it names.
    assert_eq!(shipped(), "", "ship ran on a file outside the run");
    assert_nowhere_in_run(&run_dir, &ran, &sha256_of(Path::new("/etc/passwd"))?);
    assert_ne!(ran.code, exit_codes::SUCCESS);
    ran.assert_stderr(&["names the path `../../../../etc/passwd`"]);
    std::fs::write(&report_file, &original)?;

    // Intact, it resumes, and the release sums the bytes that were published: the digest the
    // test computes of `alpha`, not that of anything it was changed to.
    let ran = resume()?;
    let sums = shipped();
    assert!(sums.contains(alpha.as_str()), "{sums}");
    assert!(!sums.contains(&sha256_text("tampered\n")), "{sums}");
    assert_eq!(
        run_record(&run_dir)?.stage("ship").map(|s| s.status),
        Some(Succeeded)
    );
    ran.assert_exit(exit_codes::SUCCESS);
    Ok(())
}

/// The sha256 of `text`, computed here.
fn sha256_text(text: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(text))
}

/// The run record `run_dir` holds now.
fn run_record(run_dir: &Path) -> Result<sluice::model::report::RunReport> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        run_dir.join("report.json"),
    )?)?)
}

/// `digest` is in no file of the run folder and nothing sluice printed.
#[track_caller]
fn assert_nowhere_in_run(run_dir: &Path, ran: &Ran, digest: &str) {
    assert!(!ran.stdout.contains(digest) && !ran.stderr.contains(digest));
    for (file, text) in all_text_under(run_dir) {
        assert!(!text.contains(digest), "{digest} in {}", file.display());
    }
}
