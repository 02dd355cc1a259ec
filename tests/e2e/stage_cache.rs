//! The stage cache is never wrong and says why it missed: bytes put back with their size and
//! mtime, a new commit, a new toolchain (`cache_key`), a planted entry and a cache folder others
//! can write are all caught; changes outside every grant are not misses; and a miss names the
//! config key, the input, the workspace path or the command output that moved.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::RunReport;

use crate::real_content::git;
use crate::support::{Pipeline, Ran, Sandbox, Stage, settle, table};

/// A pipeline whose `code` stage packs the workspace `ws` (cacheable: it only reads it).
fn checkout() -> Pipeline {
    Pipeline::new("state")
        .set("workspace", "ws")
        .stage(Stage::new("code", "checkout").allow("workspace", "read"))
}

fn run(sandbox: &Sandbox, pipeline: &Pipeline) -> Result<(Ran, RunReport)> {
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let (ran, report) = sandbox.run(&file)?;
    assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
    Ok((ran, report))
}

fn hit(report: &RunReport, stage: &str) -> bool {
    report
        .stages
        .iter()
        .find(|s| s.name == stage)
        .and_then(|s| s.cache.as_ref())
        .is_some_and(|c| c.hit)
}

fn artifact(report: &RunReport, relative: &str) -> PathBuf {
    Path::new(&report.run_dir).join(relative)
}

/// The bytes of `name` inside the tar archive `archive`.
fn member(archive: &Path, name: &str) -> Result<String> {
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(name)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn bytes_put_back_with_their_size_and_mtime_are_a_miss_and_a_fresh_output() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(&ws)?;
    let file = ws.join("config.txt");
    std::fs::write(&file, "old-bytes\n")?;
    settle();
    let (_, first) = run(&sandbox, &checkout())?;
    assert!(!hit(&first, "code"));
    let (_, second) = run(&sandbox, &checkout())?;
    assert!(
        hit(&second, "code"),
        "nothing changed: served from the cache"
    );

    // What `cp -p`, `rsync -t` or `touch -r` leave: new bytes, same size, the old mtime.
    let mtime = std::fs::metadata(&file)?.modified()?;
    std::fs::write(&file, "new-bytes\n")?;
    std::fs::File::options()
        .write(true)
        .open(&file)?
        .set_modified(mtime)?;
    assert_eq!(std::fs::metadata(&file)?.modified()?, mtime);
    settle();
    let (ran, third) = run(&sandbox, &checkout())?;
    assert!(!hit(&third, "code"), "a stale output was served");
    let packed = member(&artifact(&third, "artifacts/code/source.tar"), "config.txt")?;
    assert_eq!(packed, "new-bytes\n");
    ran.assert_stderr(&["stage cache miss: workspace: config.txt (changed)"]);
    Ok(())
}

#[test]
fn a_plugin_that_puts_bytes_and_mtime_back_through_wasi_cannot_poison_the_cache() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(&ws)?;
    std::fs::write(ws.join("config.txt"), "clean-bytes\n")?;
    settle();
    let (_, first) = run(&sandbox, &checkout())?;
    assert!(!hit(&first, "code"));
    // A stage granted the workspace for writing rewrites it and sets the mtime back (WASI).
    let hostile = Pipeline::new("hostile").set("workspace", "ws").stage(
        Stage::new("poison", "mtime-restore")
            .allow("workspace", "write")
            .config("path", "config.txt")
            .config("content", "dirty-bytes\n"),
    );
    run(&sandbox, &hostile)?;
    assert_eq!(
        std::fs::read_to_string(ws.join("config.txt"))?,
        "dirty-bytes\n"
    );
    settle();
    let (_, after) = run(&sandbox, &checkout())?;
    assert!(
        !hit(&after, "code"),
        "the poisoned tree was served the clean tree's output"
    );
    let packed = member(&artifact(&after, "artifacts/code/source.tar"), "config.txt")?;
    assert_eq!(packed, "dirty-bytes\n");
    Ok(())
}

/// A cacheable stage that reads `data/file.txt` through a dir grant and copies it out.
fn reader() -> Pipeline {
    Pipeline::new("reader").stage(
        Stage::new("read", "escape")
            .allow("dirs", [table([("host", "data"), ("guest", "/data")])])
            .config("mode", "read")
            .config("path", "/data/file.txt"),
    )
}

#[test]
fn a_thousand_changes_outside_every_grant_are_hits_and_one_inside_is_a_miss() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let data = sandbox.path().join("data");
    let elsewhere = sandbox.path().join("elsewhere");
    std::fs::create_dir_all(&data)?;
    std::fs::create_dir_all(&elsewhere)?;
    std::fs::write(data.join("file.txt"), "first\n")?;
    settle();
    let (_, first) = run(&sandbox, &reader())?;
    assert!(!hit(&first, "read"));

    for round in 0..2 {
        for i in 0..500 {
            std::fs::write(elsewhere.join(format!("f{i}.txt")), format!("{round}-{i}"))?;
        }
        settle();
        let (_, again) = run(&sandbox, &reader())?;
        assert!(
            hit(&again, "read"),
            "a change outside every grant was a miss"
        );
    }

    std::fs::write(data.join("file.txt"), "second\n")?;
    settle();
    let (ran, changed) = run(&sandbox, &reader())?;
    assert!(
        !hit(&changed, "read"),
        "a change to a granted, read file was served stale"
    );
    assert_eq!(
        std::fs::read_to_string(artifact(&changed, "artifacts/read/loot.txt"))?,
        "second\n"
    );
    ran.assert_stderr(&["stage cache miss:", "file.txt (changed)"]);
    Ok(())
}

#[test]
fn a_new_commit_is_a_miss_and_source_json_names_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(&ws)?;
    std::fs::write(ws.join("lib.rs"), "pub fn f() {}\n")?;
    git(&ws, &["init", "-q"])?;
    git(&ws, &["add", "-A"])?;
    git(&ws, &["commit", "-q", "-m", "first"])?;
    settle();
    run(&sandbox, &checkout())?;
    let (_, served) = run(&sandbox, &checkout())?;
    assert!(hit(&served, "code"));
    // No work-tree file changes: only what `.git` says.
    git(&ws, &["commit", "-q", "--allow-empty", "-m", "second"])?;
    git(&ws, &["tag", "v1.2.0"])?;
    settle();
    let (ran, after) = run(&sandbox, &checkout())?;
    assert!(!hit(&after, "code"), "a stale source.json was served");
    let source: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(artifact(
        &after,
        "artifacts/code/source.json",
    ))?)?;
    assert_eq!(
        source["commit"].as_str().unwrap_or_default(),
        git(&ws, &["rev-parse", "HEAD"])?.trim()
    );
    assert_eq!(source["tags"], serde_json::json!(["v1.2.0"]));
    ran.assert_stderr(&["stage cache miss: git:"]);
    Ok(())
}

/// `emit` writes a file; `up` upper-cases it.
fn two_stages(text: &str, op: &str) -> Pipeline {
    Pipeline::new("why")
        .stage(
            Stage::new("src", "emit")
                .inputs::<0>([])
                .config("files", table([("a.txt", text)])),
        )
        .stage(
            Stage::new("up", "text-transform")
                .inputs(["src/*"])
                .config("op", op),
        )
}

#[test]
fn a_planted_entry_with_the_right_digests_but_no_valid_tag_is_a_miss() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (_, first) = run(&sandbox, &two_stages("hello\n", "upper"))?;
    let up = first
        .stages
        .iter()
        .find(|s| s.name == "up")
        .and_then(|s| s.cache.clone())
        .map(|c| c.key)
        .unwrap_or_default();
    // Rewrite the entry's file and its recorded digest and size together: consistent, untagged.
    let entry_dir = sandbox.path().join("stage-cache").join(&up);
    let entry_file = entry_dir.join("entry.json");
    let mut entry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&entry_file)?)?;
    let poison = "POISONED OUTPUT\n";
    let name = entry["outputs"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    std::fs::write(entry_dir.join("files").join(&name), poison)?;
    entry["outputs"][0]["sha256"] =
        crate::support::sha256_of(&entry_dir.join("files").join(&name))?.into();
    entry["outputs"][0]["size"] = (poison.len() as u64).into();
    std::fs::write(&entry_file, serde_json::to_vec(&entry)?)?;

    let (_, second) = run(&sandbox, &two_stages("hello\n", "upper"))?;
    assert!(hit(&second, "src"), "the untouched entry still serves");
    assert!(!hit(&second, "up"), "the planted entry was served");
    let output = &second
        .stages
        .iter()
        .find(|s| s.name == "up")
        .map(|s| s.outputs[0].path.clone())
        .unwrap_or_default();
    assert_eq!(
        std::fs::read_to_string(artifact(&second, output))?,
        "HELLO\n"
    );
    Ok(())
}

#[test]
fn a_stage_cache_other_users_can_write_is_refused_and_nothing_runs() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let cache = sandbox.path().join("stage-cache");
    std::fs::create_dir_all(&cache)?;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777))?;
    let file = sandbox.pipeline("pipeline.toml", &two_stages("hi\n", "upper").to_toml())?;
    let ran = sandbox.sluice(&["run", &file.display().to_string(), "--format", "plain"])?;
    assert_ne!(ran.code, exit_codes::SUCCESS);
    ran.assert_stderr(&["can be written by other users", "chmod go-w"]);
    let runs = std::fs::read_dir(sandbox.runs_dir())
        .map(|dir| dir.flatten().filter(|e| e.file_name() != "latest").count())
        .unwrap_or(0);
    assert_eq!(runs, 0, "a run started with a shared stage cache");
    Ok(())
}

#[test]
fn a_miss_names_the_config_key_the_input_and_the_workspace_path() -> Result<()> {
    let sandbox = Sandbox::new()?;
    run(&sandbox, &two_stages("one\n", "upper"))?;
    // The emitted text changes: `src`'s config, and so `up`'s input.
    let (ran, report) = run(&sandbox, &two_stages("two\n", "upper"))?;
    ran.assert_stderr(&["stage cache miss: config.files:", "input src/a.txt:"]);
    let up = report
        .stages
        .iter()
        .find(|s| s.name == "up")
        .and_then(|s| s.cache.clone())
        .map(|c| c.why)
        .unwrap_or_default();
    assert!(
        up.iter().any(|l| l.starts_with("input src/a.txt:")),
        "{up:?}"
    );
    // `up`'s own config changes.
    let (_, third) = run(&sandbox, &two_stages("two\n", "lower"))?;
    let why = sandbox.sluice(&["cache", "why", "up", &third.run_id])?;
    assert_eq!(why.code, 0, "{}", why.stderr);
    why.assert_stdout(&["config.op: \"upper\" → \"lower\""]);
    // Between the two newest entries, without a run.
    let newest = sandbox.sluice(&["cache", "why", "up"])?;
    newest.assert_stdout(&["config.op: \"upper\" → \"lower\""]);

    // A workspace path, named.
    let ws = sandbox.path().join("ws");
    std::fs::create_dir_all(ws.join("src"))?;
    std::fs::write(ws.join("src/main.rs"), "fn main() {}\n")?;
    settle();
    run(&sandbox, &checkout())?;
    std::fs::write(ws.join("src/main.rs"), "fn main() { println!(); }\n")?;
    settle();
    let (_, changed) = run(&sandbox, &checkout())?;
    let why = sandbox.sluice(&["cache", "why", "code", &changed.run_id])?;
    why.assert_stdout(&["workspace: src/main.rs (changed)"]);
    Ok(())
}

#[test]
fn a_cache_key_command_whose_output_changes_is_a_miss_that_names_it() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // A "toolchain" the key cannot see as a file: the version a program prints.
    let version = sandbox.path().join("toolchain-version");
    let script = sandbox.path().join("version.sh");
    std::fs::write(&version, "tool 1.95.0\n")?;
    std::fs::write(&script, format!("cat '{}' || exit 3\n", version.display()))?;
    let pipeline = Pipeline::new("toolchain").stage(
        Stage::new("build", "exec")
            .inputs::<0>([])
            .set("cache", true)
            .set("cache_key", vec![format!("sh {}", script.display())])
            .allow("exec", vec!["sh"])
            .config("program", "sh")
            .config("args", vec!["-c", "echo built"])
            .config("log_name", "out.txt"),
    );
    let (_, first) = run(&sandbox, &pipeline)?;
    assert!(!hit(&first, "build"));
    let (_, second) = run(&sandbox, &pipeline)?;
    assert!(hit(&second, "build"), "the same toolchain: served");

    std::fs::write(&version, "tool 1.96.0\n")?;
    let (ran, third) = run(&sandbox, &pipeline)?;
    assert!(
        !hit(&third, "build"),
        "a new toolchain was served the old output"
    );
    ran.assert_stderr(&[
        "stage cache miss: command sh ",
        "tool 1.95.0 (",
        "→ tool 1.96.0 (",
    ]);

    // A command that fails makes no key: the stage runs, and nothing is stored for it.
    std::fs::remove_file(&version)?;
    let (ran, fourth) = run(&sandbox, &pipeline)?;
    assert!(!hit(&fourth, "build"));
    ran.assert_stderr(&["no stage-cache key", "failed"]);
    let record = fourth.stages.iter().find(|s| s.name == "build");
    assert!(record.is_some_and(|s| s.cache.is_none()), "{record:?}");
    Ok(())
}

#[test]
fn a_program_is_keyed_by_its_bytes_not_by_where_it_is_installed() -> Result<()> {
    let sandbox = Sandbox::new()?;
    // The same tool installed in two places (another machine's layout), then a different one.
    let (here, there) = (sandbox.path().join("here"), sandbox.path().join("there"));
    for dir in [&here, &there] {
        std::fs::create_dir_all(dir)?;
        std::fs::copy("/bin/echo", dir.join("tool"))?;
    }
    let pipeline = Pipeline::new("installed").stage(
        Stage::new("build", "exec")
            .inputs::<0>([])
            .set("cache", true)
            .allow("exec", vec!["tool"])
            .config("program", "tool")
            .config("args", vec!["built"])
            .config("log_name", "out.txt"),
    );
    let file = sandbox.pipeline("pipeline.toml", &pipeline.to_toml())?;
    let path_with = |dir: &Path| format!("{}:/usr/bin:/bin", dir.display());
    let run_with = |dir: &Path| -> Result<RunReport> {
        let (ran, report) = sandbox.run_with_env(&file, &[("PATH", path_with(dir).as_str())])?;
        assert_eq!(ran.code, exit_codes::SUCCESS, "{}", ran.stderr);
        Ok(report)
    };
    assert!(!hit(&run_with(&here)?, "build"));
    assert!(
        hit(&run_with(&there)?, "build"),
        "the same bytes at another path, another inode and mtime: the same key"
    );
    std::fs::copy("/bin/true", there.join("tool"))?;
    let (ran, changed) = sandbox.run_with_env(&file, &[("PATH", path_with(&there).as_str())])?;
    assert!(
        !hit(&changed, "build"),
        "another program was served the old output"
    );
    ran.assert_stderr(&["stage cache miss: program tool"]);
    Ok(())
}
