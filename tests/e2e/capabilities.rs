//! Permission diffs on plugin updates: pipeline.lock records what each plugin imports and exports
//! (read from the component), `sluice lock --update` names what a new version asks for and refuses
//! a widening until it is accepted by name, a narrowing is only reported, and a local plugin file
//! swapped for one that imports more is refused by `sluice run --locked` and `sluice check`.
//! The "new version" is plugins/fixtures/deploy-v2: the shipped deploy stage that also reads a
//! secret (one import more, sluice:pipeline/secrets).

use std::path::{Path, PathBuf};

use anyhow::Result;
use sluice::exit_codes;

use crate::support::{Pipeline, RegistryServer, Sandbox, Stage, plugin, push, sha256_of, table};

/// The import deploy-v2 has and deploy has not, as the diff names it.
const NEW_IMPORT: &str = "sluice:pipeline/secrets@0.1.x";

fn pipeline_using(sandbox: &Sandbox, deploy: &str) -> Result<PathBuf> {
    sandbox.write(
        &Pipeline::new("ship")
            .secret("DEPLOY_TOKEN", table([("env", "DEPLOY_TOKEN")]))
            .stage(Stage::new("code", "emit").config("files", table([("release.txt", "1.0.0\n")])))
            .stage(
                Stage::with_plugin("deploy", deploy)
                    .inputs(["code/*"])
                    .allow("secrets", ["DEPLOY_TOKEN"]),
            ),
    )
}

fn lock_of(pipeline: &Path) -> PathBuf {
    pipeline.with_extension("lock")
}

fn lock_text(pipeline: &Path) -> String {
    std::fs::read_to_string(lock_of(pipeline)).unwrap_or_default()
}

fn sluice_lock(sandbox: &Sandbox, pipeline: &Path, extra: &[&str]) -> Result<crate::support::Ran> {
    let file = pipeline.display().to_string();
    let mut args = vec!["lock", file.as_str()];
    args.extend_from_slice(extra);
    sandbox.sluice(&args)
}

#[test]
fn a_registry_update_that_imports_more_is_refused_until_accepted() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (publisher, team) = (Sandbox::new()?, Sandbox::new()?);
    let (v1, v2) = (plugin("deploy")?, plugin("deploy-v2")?);
    let stable = registry.reference("acme/deploy:stable");
    push(&publisher, &v1, &registry.reference("acme/deploy:1.0.0"))?;
    push(&publisher, &v1, &stable)?;
    let pipeline = pipeline_using(&team, &stable)?;
    sluice_lock(&team, &pipeline, &[])?.assert_exit(0);
    let locked = lock_text(&pipeline);
    assert!(locked.contains("version = 2"), "{locked}");
    assert!(locked.contains("\"sluice:pipeline/log@0.1.0\""), "{locked}");
    assert!(!locked.contains("sluice:pipeline/secrets"), "{locked}");
    assert!(
        locked.contains("\"describe\""),
        "the world is recorded: {locked}"
    );
    // The local plugin of the first stage is recorded too.
    assert!(locked.contains("[[local]]"), "{locked}");

    // The tag moves to a version that imports secrets: `lock --update` names it and refuses.
    push(&publisher, &v2, &registry.reference("acme/deploy:1.1.0"))?;
    push(&publisher, &v2, &stable)?;
    let before = sha256_of(&lock_of(&pipeline))?;
    let ran = sluice_lock(&team, &pipeline, &["--update"])?;
    ran.assert_exit(exit_codes::PLUGIN_REFUSED).assert_stderr(&[
        "stage `deploy`",
        "acme/deploy",
        &format!("now imports {NEW_IMPORT}"),
        "refused",
        "--update --accept deploy",
    ]);
    assert_eq!(
        sha256_of(&lock_of(&pipeline))?,
        before,
        "a refused update leaves the lock as it was, byte for byte"
    );
    // A run keeps the pinned version and says nothing is wrong.
    team.sluice(&["check", &pipeline.display().to_string()])?
        .assert_stdout(&["lock    matches pipeline.lock"]);

    // Accepted by name: written, and the lock records the new import.
    sluice_lock(&team, &pipeline, &["--update", "--accept", "deploy"])?
        .assert_exit(0)
        .assert_stderr(&[&format!("now imports {NEW_IMPORT}"), "(accepted)"]);
    let accepted = lock_text(&pipeline);
    assert!(
        accepted.contains("\"sluice:pipeline/secrets@0.1.0\""),
        "{accepted}"
    );

    // Back to the narrower version: reported, not refused.
    push(&publisher, &v1, &stable)?;
    sluice_lock(&team, &pipeline, &["--update"])?
        .assert_exit(0)
        .assert_stderr(&[&format!("no longer imports {NEW_IMPORT}")]);
    assert!(!lock_text(&pipeline).contains("sluice:pipeline/secrets"));

    // A tag changed in the pipeline file is the same update, named by its versions; the
    // repository's name accepts it as well as the stage's.
    let bumped = pipeline_using(&team, &registry.reference("acme/deploy:1.1.0"))?;
    assert_eq!(bumped, pipeline);
    let before = sha256_of(&lock_of(&pipeline))?;
    team.sluice(&["run", &pipeline.display().to_string()])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&[
            &format!("acme/deploy stable → 1.1.0 now imports {NEW_IMPORT}"),
            "--accept deploy",
        ]);
    assert_eq!(sha256_of(&lock_of(&pipeline))?, before);
    sluice_lock(&team, &pipeline, &["--accept", "acme/deploy"])?.assert_exit(0);
    assert!(lock_text(&pipeline).contains("sluice:pipeline/secrets@0.1.0"));

    // `sluice plugin pull` says what a moved tag's new version asks for beyond the one before.
    let puller = Sandbox::new()?;
    puller.sluice(&["plugin", "pull", &stable])?.assert_exit(0);
    push(&publisher, &v2, &stable)?;
    puller
        .sluice(&["plugin", "pull", &stable])?
        .assert_exit(0)
        .assert_stdout(&["changed", &format!("now imports {NEW_IMPORT}"), "--accept"]);
    Ok(())
}

#[test]
fn a_version_1_lock_is_read_and_locked_asks_to_record_capabilities() -> Result<()> {
    let registry = RegistryServer::start()?;
    let (publisher, team) = (Sandbox::new()?, Sandbox::new()?);
    let reference = registry.reference("acme/deploy:1.0.0");
    let manifest = push(&publisher, &plugin("deploy")?, &reference)?;
    let pipeline = pipeline_using(&team, &reference)?;
    // What sluice wrote before capability sets: version 1, pins only.
    let layer = format!("sha256:{}", sha256_of(&plugin("deploy")?)?);
    let size = std::fs::metadata(plugin("deploy")?)?.len();
    std::fs::write(
        lock_of(&pipeline),
        format!(
            "version = 1\n\n[[plugin]]\nreference = \"{reference}\"\nmanifest = \"{manifest}\"\nlayer = \"{layer}\"\nsize = {size}\n"
        ),
    )?;
    let before = sha256_of(&lock_of(&pipeline))?;
    team.sluice(&["check", &pipeline.display().to_string(), "--locked"])?
        .assert_exit(exit_codes::PLUGIN_REFUSED)
        .assert_stderr(&["older sluice", "records no capability sets", "sluice lock"]);
    assert_eq!(sha256_of(&lock_of(&pipeline))?, before);
    sluice_lock(&team, &pipeline, &[])?
        .assert_exit(0)
        .assert_stderr(&[&format!("record what {reference} imports and exports")]);
    let text = lock_text(&pipeline);
    assert!(
        text.contains("version = 2") && text.contains(&manifest),
        "{text}"
    );
    team.sluice_with_env(
        &["check", &pipeline.display().to_string(), "--locked"],
        &[("DEPLOY_TOKEN", "t0ken")],
    )?
    .assert_exit(0);
    Ok(())
}

#[test]
fn a_local_plugin_that_now_imports_more_is_refused_by_locked_and_check() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let local = sandbox.path().join("plugins/deploy.wasm");
    std::fs::create_dir_all(local.parent().unwrap_or(sandbox.path()))?;
    std::fs::copy(plugin("deploy")?, &local)?;
    let pipeline = pipeline_using(&sandbox, "plugins/deploy.wasm")?;
    let file = pipeline.display().to_string();
    let token = [("DEPLOY_TOKEN", "t0ken")];

    // A pipeline of local plugins gets no lock file from a run, only from `sluice lock`.
    sandbox
        .sluice_with_env(&["check", &file], &token)?
        .assert_exit(0);
    assert!(!lock_of(&pipeline).exists(), "check wrote a lock file");
    sluice_lock(&sandbox, &pipeline, &[])?.assert_exit(0);
    let recorded = lock_text(&pipeline);
    assert!(
        recorded.contains("path = \"plugins/deploy.wasm\""),
        "{recorded}"
    );
    sandbox
        .sluice_with_env(&["check", &file, "--locked"], &token)?
        .assert_exit(0)
        .assert_stdout(&["lock    matches pipeline.lock"]);

    // The file is replaced by a build that also reads a secret. Its grants allow that, so only
    // the lock can tell.
    std::fs::copy(plugin("deploy-v2")?, &local)?;
    let before = sha256_of(&lock_of(&pipeline))?;
    let checked = sandbox.sluice_with_env(&["check", &file], &token)?;
    checked
        .assert_exit(exit_codes::STAGE_ERROR)
        .assert_stdout(&[
            "DIFFERS from pipeline.lock",
            "asks for more than pipeline.lock records",
            &format!("now imports {NEW_IMPORT}"),
            "--accept deploy",
        ]);
    let runs = sandbox.runs_dir();
    let ran = sandbox.sluice_with_env(
        &[
            "run",
            &file,
            "--locked",
            "--format",
            "plain",
            "--runs-dir",
            &runs.display().to_string(),
        ],
        &token,
    )?;
    ran.assert_exit(exit_codes::PLUGIN_REFUSED).assert_stderr(&[
        "local plugin plugins/deploy.wasm",
        &format!("now imports {NEW_IMPORT}"),
        "refused",
        "--accept deploy",
    ]);
    assert_eq!(
        std::fs::read_dir(&runs).map_or(0, |d| d.count()),
        0,
        "nothing ran: {}",
        ran.stderr
    );
    assert_eq!(sha256_of(&lock_of(&pipeline))?, before);

    // A plain run warns loudly, runs (grants decide), and keeps the lock's set.
    let ran = sandbox.sluice_with_env(
        &[
            "run",
            &file,
            "--format",
            "plain",
            "--runs-dir",
            &runs.display().to_string(),
        ],
        &token,
    )?;
    let said = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        said.contains("warning") && said.contains(NEW_IMPORT) && said.contains("--accept deploy"),
        "{said}"
    );
    assert_eq!(sha256_of(&lock_of(&pipeline))?, before);

    // Accepted: recorded, and CI passes again.
    sluice_lock(&sandbox, &pipeline, &["--accept", "deploy"])?.assert_exit(0);
    assert!(lock_text(&pipeline).contains("sluice:pipeline/secrets@0.1.0"));
    sandbox
        .sluice_with_env(&["check", &file, "--locked"], &token)?
        .assert_exit(0);

    // The shipped build again: fewer imports is recorded by a plain run, and said.
    std::fs::copy(plugin("deploy")?, &local)?;
    sandbox
        .sluice_with_env(&["check", &file], &token)?
        .assert_exit(0)
        .assert_stderr(&[&format!("no longer imports {NEW_IMPORT}")]);
    assert!(!lock_text(&pipeline).contains("sluice:pipeline/secrets"));
    Ok(())
}
