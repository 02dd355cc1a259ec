//! Where and how long a granted program runs: never in a folder plugins fill (a
//! `.cargo/config.toml` whose `runner` writes a canary, planted in `/out` by the plugin, must not
//! run through `cargo run`), and always watched: the watchman that stops it if sluice dies is
//! there before its first instruction, and killing it stops the program.

use std::path::Path;

use super::*;

/// What the plugin plants in `/out`: a crate, and a cargo config whose runner — cargo starts it
/// in place of the built program — writes `canary` and `-42` (computed by the shell, so the text
/// written appears in no planted file) into `marker`.
fn planted_crate(marker: &Path, canary: &str) -> [(&'static str, String); 3] {
    let runner = format!(
        "[target.x86_64-unknown-linux-gnu]\nrunner = [\"/bin/sh\", \"-c\", \"echo {canary}-$((6*7)) > '{}'\", \"runner\"]\n",
        marker.display()
    );
    [
        ("/out/.cargo/config.toml", runner),
        (
            "/out/Cargo.toml",
            "[package]\nname = \"planted\"\nversion = \"0.1.0\"\nedition = \"2021\"\n".into(),
        ),
        (
            "/out/src/main.rs",
            "fn main() { println!(\"the real program ran\"); }\n".into(),
        ),
    ]
}

/// The attack: plant the crate, then `cargo run` it (`cwd` when given), its build kept in
/// the sandbox. cargo's own folders: the toolchain the tests use, a CARGO_HOME of the sandbox.
fn cargo_run(sandbox: &Sandbox, cwd: Option<&str>, marker: &Path, canary: &str) -> Result<Outcome> {
    let target = sandbox.path().join("cargo-target");
    let mut stage = attack("exec-probe")
        .allow("exec", ["cargo"])
        .allow("env", ["RUSTUP_HOME", "CARGO_HOME"])
        .limit("timeout", "120s")
        .config("program", "cargo")
        .config(
            "args",
            [
                "run",
                "--offline",
                "--quiet",
                "--manifest-path",
                "${out}/Cargo.toml",
                "--target-dir",
                &target.display().to_string(),
            ],
        )
        .config("plant", table(planted_crate(marker, canary)));
    if let Some(cwd) = cwd {
        stage = stage.config("cwd", cwd);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let rustup_home = std::env::var("RUSTUP_HOME").unwrap_or(format!("{home}/.rustup"));
    let cargo_home = sandbox.path().join("cargo-home");
    sandbox.run_pipeline_with_env(
        &Pipeline::three_stage(stage),
        &[
            ("RUSTUP_HOME", rustup_home.as_str()),
            ("CARGO_HOME", &cargo_home.display().to_string()),
        ],
    )
}

#[test]
fn a_program_never_runs_in_the_output_folder_the_plugin_filled() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let marker = sandbox.path().join("pwned");
    let canary = "CANARY-planted-runner-7e41";
    let run = cargo_run(&sandbox, Some("/out"), &marker, canary)?;
    // State first: the planted runner never ran, and nothing was built.
    assert!(
        !marker.exists(),
        "the planted runner ran: {}",
        run.describe()
    );
    assert!(!sandbox.path().join("cargo-target").exists());
    let written = format!("{canary}-42");
    for (path, text) in all_text_under(run.run_dir()) {
        assert!(
            !text.contains(&written),
            "{} holds the canary",
            path.display()
        );
    }
    assert_stopped(&run, Failed, &["programs do not run in `/out`"])?;
    assert!(
        run.stage("attack")
            .denied
            .iter()
            .any(|d| d == "running `cargo` in `/out`"),
        "{}",
        run.describe()
    );
    Ok(())
}

#[test]
fn without_a_working_folder_a_program_starts_in_an_empty_one() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let marker = sandbox.path().join("pwned");
    let canary = "CANARY-planted-runner-91c2";
    // No workspace and no `cwd`: cargo builds the planted crate by its path, from a folder no
    // plugin has seen, so the planted config is not read and the real program runs.
    let run = cargo_run(&sandbox, None, &marker, canary)?;
    assert!(
        !marker.exists(),
        "the planted runner ran: {}",
        run.describe()
    );
    run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    let printed = std::fs::read_to_string(run.run_dir().join("artifacts/attack/loot.txt"))?;
    assert_eq!(printed, "the real program ran\n");
    Ok(())
}

/// Shell that sets `w` to the pid of the watchman of this shell's process group, if one runs:
/// the group's leader (`sh -c … sluice-watchman`), or a watchman naming the group.
const FIND_WATCHMAN: &str = r#"read -r _ _ _ _ pg _ < /proc/$$/stat
w=
for d in /proc/[0-9]*; do
  c=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) || continue
  case "$c" in
    *" sluice-watchman $pg ") w=${d#/proc/} ;;
    *" sluice-watchman ") [ "${d#/proc/}" = "$pg" ] && w=$pg ;;
  esac
done
"#;

/// `exec-probe` running `sh -c SCRIPT`, its output published as `loot.txt`.
fn shell(script: &str, timeout: &str) -> Stage {
    attack("exec-probe")
        .allow("exec", ["sh"])
        .limit("timeout", timeout)
        .config("program", "sh")
        .config("args", ["-c", script])
}

#[test]
fn the_watchman_is_there_before_the_program_starts() -> Result<()> {
    let run = run_attack(shell(
        &format!("{FIND_WATCHMAN}echo \"watchman: ${{w:-none}}\""),
        "60s",
    ))?;
    run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    let printed = std::fs::read_to_string(run.run_dir().join("artifacts/attack/loot.txt"))?;
    let pid = printed.trim().strip_prefix("watchman: ").unwrap_or("");
    assert!(
        !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()),
        "the program's first instructions found no watchman: {printed:?}"
    );
    Ok(())
}

#[test]
fn a_program_that_kills_its_watchman_is_stopped_at_once() -> Result<()> {
    // A sleep length no other process has marks what the stage started.
    let mark = format!("sleep 4{}.5", std::process::id() % 100_000);
    let run = run_attack(shell(
        &format!("{FIND_WATCHMAN}[ -n \"$w\" ] && kill -9 \"$w\"; {mark}; echo survived-$((6*7))"),
        "20s",
    ))?;
    // State first: nothing it started runs, and it never got past its sleep.
    let left = processes_with(&mark);
    assert!(left.is_empty(), "still running: {left:?}");
    for (path, text) in all_text_under(run.run_dir()) {
        assert!(
            !text.contains("survived-42"),
            "{} says it survived",
            path.display()
        );
    }
    // Stopped when the watchman died, not 20 s later by the stage's timeout.
    run.assert_stages(exit_codes::SUCCESS, &all_succeeded("attack"));
    assert!(
        run.stage("attack")
            .denied
            .iter()
            .any(|d| d == "killing the watchman of `sh`"),
        "{}",
        run.describe()
    );
    Ok(())
}
