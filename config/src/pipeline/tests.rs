//! Unit tests of pipeline.toml parsing; every refused input also has a golden case under
//! tests/golden/pipeline with its full message.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::grants::{Access, NetGrant};

fn parse_str(text: &str) -> Result<Pipeline, Diagnostic> {
    parse(Path::new("examples/p/pipeline.toml"), text)
}

const GOOD: &str = r#"
version = 1
[pipeline]
name = "demo"

[[stage]]
name = "code"
plugin = "a.wasm"

[[stage]]
name = "build"
plugin = "b.wasm"
inputs = ["code/source.tar", "code/*"]
limits = { timeout = "2m", memory = "64 MiB" }
[stage.config]
profile = "release"
"#;

#[test]
fn parses_a_valid_pipeline() -> Result<(), Diagnostic> {
    let p = parse_str(GOOD)?;
    assert_eq!(p.name, "demo");
    assert_eq!(p.stages.len(), 2);
    assert_eq!(p.stages[0].inputs, InputSelection::AllEarlier);
    assert_eq!(
        p.stages[0].plugin,
        PluginSource::File("examples/p/a.wasm".into())
    );
    assert_eq!(p.stages[0].plugin.registry(), None);
    assert_eq!(p.stages[0].site.to_string(), "examples/p/pipeline.toml:7:8");
    assert_eq!(p.stages[1].config_json, r#"{"profile":"release"}"#);
    assert_eq!(p.stages[1].limits.timeout, Duration::from_secs(120));
    assert_eq!(p.stages[1].limits.memory, 64 << 20);
    assert_eq!(p.stages[0].limits, Limits::default());
    assert_eq!(p.stages[0].grants, Grants::none());
    let InputSelection::Only(refs) = &p.stages[1].inputs else {
        panic!("expected explicit inputs");
    };
    assert_eq!(refs[0].name.as_deref(), Some("source.tar"));
    assert_eq!(refs[1].name, None);
    Ok(())
}

#[test]
fn registry_plugins_and_key_files_are_not_opened() -> Result<(), Diagnostic> {
    let text = GOOD
        .replace(
            "name = \"demo\"",
            "name = \"demo\"\ntrusted_keys = [\"keys/team.pub\"]",
        )
        .replace("\"b.wasm\"", "\"oci://127.0.0.1:5000/acme/build:1.0\"");
    let p = parse_str(&text)?;
    let build = &p.stages[1];
    assert_eq!(build.plugin_ref, "oci://127.0.0.1:5000/acme/build:1.0");
    let reference = build.plugin.registry().map(ToString::to_string);
    assert_eq!(reference.as_deref(), Some(build.plugin_ref.as_str()));
    assert_eq!(build.trusted_keys.len(), 1);
    assert_eq!(
        build.trusted_keys[0].path,
        Path::new("examples/p/keys/team.pub")
    );
    assert_eq!(build.trusted_keys[0].site.line, 5);
    assert_eq!(p.stages[0].trusted_keys, build.trusted_keys);
    Ok(())
}

fn error_of(text: &str) -> Diagnostic {
    match parse_str(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(diag) => diag,
    }
}

#[test]
fn unknown_key_points_at_the_key() {
    let diag = error_of(&GOOD.replace("limits = {", "limit = {"));
    assert!(diag.message.contains("unknown field `limit`"), "{diag}");
    assert_eq!(diag.line, Some(14));
}

#[test]
fn duplicate_stage_names_the_first_one() {
    let diag = error_of(&GOOD.replace("name = \"build\"", "name = \"code\""));
    assert!(
        diag.message.contains("duplicate stage name `code`"),
        "{diag}"
    );
    assert_eq!(diag.line, Some(11));
    assert!(diag.to_string().contains("line 7"), "{diag}");
}

#[test]
fn input_must_name_an_earlier_stage() {
    let diag = error_of(&GOOD.replace("code/source.tar", "test/report.xml"));
    assert!(
        diag.message.contains("names no earlier stage `test`"),
        "{diag}"
    );
    assert!(
        diag.to_string().contains("earlier stages are: code"),
        "{diag}"
    );
}

#[test]
fn wrong_version_is_refused() {
    let diag = error_of(&GOOD.replace("version = 1", "version = 2"));
    assert!(diag.message.contains("unsupported pipeline file version 2"));
    assert_eq!(diag.line, Some(2));
}

#[test]
fn bad_input_syntax_and_names() {
    assert!(
        error_of(&GOOD.replace("code/source.tar", "code"))
            .message
            .contains("no `/`")
    );
    assert!(
        error_of(&GOOD.replace("code/source.tar", "code/../x"))
            .message
            .contains("invalid input")
    );
    assert!(
        error_of(&GOOD.replace("name = \"build\"", "name = \"../b\""))
            .message
            .contains("invalid stage name")
    );
    assert!(
        error_of(&GOOD.replace("\"2m\"", "\"soon\""))
            .message
            .contains("invalid duration")
    );
}

const GRANTED: &str = r#"
version = 1
[pipeline]
name = "g"
workspace = ".."
limits = { memory = "256 MiB", log = "1 MiB" }

[secrets]
DEPLOY_TOKEN = { env = "MY_TOKEN" }
KEY = { file = "key.txt" }

[[stage]]
name = "deploy"
plugin = "d.wasm"
limits = { timeout = "10s" }
[stage.allow]
workspace = "read"
dirs = [{ host = "dist", guest = "/dist", mode = "write" }]
env = ["RUST_LOG"]
net = ["127.0.0.1:8080", "Example.com:443"]
exec = ["cargo"]
secrets = ["DEPLOY_TOKEN"]
"#;

#[test]
fn parses_grants_limits_and_secrets() -> Result<(), Diagnostic> {
    let p = parse_str(GRANTED)?;
    assert_eq!(p.workspace, Path::new("examples/p/.."));
    assert_eq!(
        p.secrets.get("KEY"),
        Some(&SecretSource::File("examples/p/key.txt".into()))
    );
    let stage = &p.stages[0];
    assert_eq!(stage.limits.memory, 256 << 20);
    assert_eq!(stage.limits.log, 1 << 20);
    assert_eq!(stage.limits.timeout, Duration::from_secs(10));
    let g = &stage.grants;
    assert_eq!(g.workspace, Access::Read);
    assert_eq!(g.dirs[0].host, Path::new("examples/p/dist"));
    assert_eq!(g.dirs[0].access, Access::Write);
    assert_eq!(
        g.net,
        [
            NetGrant {
                host: "127.0.0.1".into(),
                port: 8080
            },
            NetGrant {
                host: "example.com".into(),
                port: 443
            }
        ]
    );
    assert_eq!(g.exec, ["cargo"]);
    assert_eq!(g.secrets, ["DEPLOY_TOKEN"]);
    Ok(())
}

#[test]
fn bad_grants_are_refused_with_a_place() {
    let cases = [
        ("\"127.0.0.1:8080\"", "\"127.0.0.1\"", "no `:port`"),
        (
            "\"127.0.0.1:8080\"",
            "\"127.0.0.1:99999\"",
            "port is not a number",
        ),
        (
            "secrets = [\"DEPLOY_TOKEN\"]",
            "secrets = [\"NOPE\"]",
            "secret `NOPE` is not declared",
        ),
        ("guest = \"/dist\"", "guest = \"/out\"", "already used"),
        (
            "guest = \"/dist\"",
            "guest = \"dist\"",
            "invalid guest path",
        ),
        (
            "workspace = \"read\"",
            "workspace = \"all\"",
            "invalid access mode",
        ),
        ("memory = \"256 MiB\"", "memory = \"lots\"", "invalid size"),
        (
            "env = [\"RUST_LOG\"]",
            "env = [\"A=B\"]",
            "invalid variable name",
        ),
        (
            "exec = [\"cargo\"]",
            "exec = [\"cargo build\"]",
            "invalid program",
        ),
        (
            "{ env = \"MY_TOKEN\" }",
            "{ }",
            "exactly one of `env` or `file`",
        ),
        (
            "net = [\"127.0.0.1:8080\", \"Example.com:443\"]",
            "net = [\"example.com:443\", \"Example.com:443\"]",
            "`example.com:443` is listed twice in `net`",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GRANTED.contains(from), "{from}");
        let diag = error_of(&GRANTED.replacen(from, to, 1));
        assert!(diag.message.contains(expected), "{to}: {diag}");
        assert!(diag.line.is_some(), "{to}: no line in {diag}");
    }
}

#[test]
fn the_graph_follows_inputs_and_needs_and_keeps_the_chain_otherwise() -> Result<(), Diagnostic> {
    let p = parse_str(
        r#"
version = 1
[pipeline]
name = "diamond"
fail_fast = false
[[stage]]
name = "code"
plugin = "a.wasm"
[[stage]]
name = "lint"
plugin = "a.wasm"
inputs = ["code/*"]
[[stage]]
name = "test"
plugin = "a.wasm"
needs = ["code"]
retries = 2
allow_failure = true
[[stage]]
name = "release"
plugin = "a.wasm"
inputs = ["lint/*"]
needs = ["test"]
[[stage]]
name = "notify"
plugin = "a.wasm"
"#,
    )?;
    let deps: Vec<Vec<&str>> = p
        .stages
        .iter()
        .map(|s| s.depends_on.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        deps,
        [
            vec![],
            vec!["code"],
            vec!["code"],
            vec!["lint", "test"],
            vec!["code", "lint", "test", "release"],
        ]
    );
    assert!(!p.fail_fast);
    assert_eq!((p.stages[2].retries, p.stages[2].allow_failure), (2, true));
    assert_eq!((p.stages[0].retries, p.stages[0].allow_failure), (0, false));
    Ok(())
}

#[test]
fn needs_must_name_other_stages_without_a_cycle() {
    let base = "version = 1\n[pipeline]\nname = \"p\"\n";
    let self_need =
        format!("{base}[[stage]]\nname = \"a\"\nplugin = \"a.wasm\"\nneeds = [\"a\"]\n");
    assert!(
        error_of(&self_need)
            .message
            .contains("stage `a` needs itself")
    );
    let cycle = format!(
        "{base}[[stage]]\nname = \"a\"\nplugin = \"a.wasm\"\nneeds = [\"b\"]\n\
         [[stage]]\nname = \"b\"\nplugin = \"a.wasm\"\nneeds = [\"a\"]\n"
    );
    let err = error_of(&cycle);
    assert!(
        err.message.contains("cycle: `a` → `b` → `a`"),
        "{}",
        err.message
    );
    assert_eq!(err.line, Some(7));
}

#[test]
fn a_matrix_fans_a_stage_out_and_references_reach_every_instance() -> Result<(), Diagnostic> {
    let p = parse_str(
        r#"
version = 1
[pipeline]
name = "m"
[[stage]]
name = "code"
plugin = "a.wasm"
[[stage]]
name = "build"
plugin = "a.wasm"
inputs = ["code/*"]
[stage.matrix]
target = ["x86_64", "aarch64"]
profile = ["debug", "release"]
[stage.config]
args = ["--target", "${matrix.target}"]
[[stage]]
name = "pack"
plugin = "a.wasm"
inputs = ["build/*"]
[[stage]]
name = "one"
plugin = "a.wasm"
inputs = ["build-aarch64-release/app"]
"#,
    )?;
    let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "code",
            "build-x86_64-debug",
            "build-x86_64-release",
            "build-aarch64-debug",
            "build-aarch64-release",
            "pack",
            "one"
        ]
    );
    let build = &p.stages[4];
    assert_eq!(build.group, "build");
    assert_eq!(
        build.depends_on,
        ["code"],
        "instances do not wait for each other"
    );
    let config: serde_json::Value = serde_json::from_str(&build.config_json).unwrap_or_default();
    assert_eq!(config["args"][1], "aarch64");
    assert_eq!(p.stages[5].depends_on.len(), 4);
    assert_eq!(p.stages[6].depends_on, ["build-aarch64-release"]);
    Ok(())
}

#[test]
fn a_pipeline_holds_at_most_max_stages_counting_matrix_instances() {
    let stages = |count: usize| {
        let mut text = String::from("version = 1\n[pipeline]\nname = \"many\"\n");
        for index in 0..count {
            text.push_str(&format!(
                "[[stage]]\nname = \"s{index}\"\nplugin = \"a.wasm\"\n"
            ));
        }
        text
    };
    let most = parse_str(&stages(MAX_STAGES)).map(|p| {
        let waits: usize = p.stages.iter().map(|s| s.depends_on.len()).sum();
        (p.stages.len(), waits)
    });
    assert_eq!(
        most.ok(),
        Some((MAX_STAGES, MAX_STAGES * (MAX_STAGES - 1) / 2)),
        "each stage waits for every stage above it"
    );
    let err = error_of(&stages(MAX_STAGES + 1));
    assert!(err.message.contains("more than 256 stages"), "{err}");
    assert_eq!(
        err.line,
        Some(4 + 3 * MAX_STAGES + 1),
        "at the stage past the limit"
    );
}
