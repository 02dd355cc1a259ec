//! `sluice run --learn`, for one stage: from what its sandbox refused (each refusal a grant would
//! have allowed is recorded with that grant), the smallest `[stage.allow]` table that allows it
//! all — its own grants plus exactly the entries it asked for, never a wildcard — and what the
//! run could not show.

use crate::config::grants::{Access, Grants};
use crate::config::names::{
    check_env_name, check_readable_variable, check_secret_name, is_safe_exec_variable,
};
use crate::model::learned::{AllowTable, LearnedGrants};
use crate::model::report::StageStatus;
use crate::sandbox::net::{GrantKey, Wanted};
use crate::trust::secrets::Masker;

/// What stage with `grants` was refused (`wanted`), among everything it was refused (`denied`).
pub fn lesson(grants: &Grants, wanted: &[Wanted], denied: &[String]) -> LearnedGrants {
    let mut learned = AllowTable::default();
    let mut proposed = own_table(grants);
    let mut not_learned = Vec::new();
    for want in wanted {
        if let Err(why) = grantable(want) {
            not_learned.push(format!("{}: {why}", want.what));
            continue;
        }
        let (new, all) = match want.key {
            GrantKey::Workspace => {
                if proposed.workspace.is_none() {
                    proposed.workspace = Some(want.entry.clone());
                    learned.workspace = Some(want.entry.clone());
                }
                continue;
            }
            GrantKey::Net => (&mut learned.net, &mut proposed.net),
            GrantKey::Exec => (&mut learned.exec, &mut proposed.exec),
            GrantKey::Env => (&mut learned.env, &mut proposed.env),
            GrantKey::ExecEnv => (&mut learned.exec_env, &mut proposed.exec_env),
            GrantKey::Secrets => (&mut learned.secrets, &mut proposed.secrets),
        };
        if !all.contains(&want.entry) {
            all.push(want.entry.clone());
            new.push(want.entry.clone());
        }
    }
    not_learned.extend(
        denied
            .iter()
            .filter(|what| !wanted.iter().any(|want| &want.what == *what))
            .map(|what| unlearnable(what)),
    );
    let mut keep = Vec::new();
    if !grants.dirs.is_empty() {
        keep.push("`dirs`".to_string());
    }
    if !grants.caches.is_empty() {
        keep.push("`caches`".to_string());
    }
    LearnedGrants {
        learned,
        proposed,
        keep,
        not_learned,
    }
}

/// Whether `pipeline.toml` could grant what the stage asked for: never a variable a pipeline may
/// not read (`SLUICE_*`, protected), never one off the `exec_env` safe list (that is a choice to
/// make knowingly, in `exec_env_unchecked`), never a name the file would refuse.
fn grantable(want: &Wanted) -> Result<(), String> {
    let name = want.entry.as_str();
    match want.key {
        GrantKey::Env => {
            check_env_name(name).map_err(|why| format!("not a variable name ({why})"))?;
            check_readable_variable(name)
        }
        GrantKey::ExecEnv if !is_safe_exec_variable(name) => Err(format!(
            "`{name}` is off the exec_env safe list; grant it in `exec_env_unchecked` only if you know what it does to the program"
        )),
        GrantKey::Secrets => check_secret_name(name),
        GrantKey::Workspace | GrantKey::Net | GrantKey::Exec | GrantKey::ExecEnv => Ok(()),
    }
}

/// Why a refusal no grant entry allows was not learned.
fn unlearnable(what: &str) -> String {
    match what
        .strip_prefix("name lookup of `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        Some(name) => format!(
            "{what}: which port it would connect to is unknown (grant `{name}:PORT` in `net`)"
        ),
        None => format!("{what}: no [stage.allow] entry allows it"),
    }
}

/// What the stage had before this run, in the table's words.
fn own_table(grants: &Grants) -> AllowTable {
    AllowTable {
        workspace: (grants.workspace != Access::None).then(|| grants.workspace.label().to_string()),
        net: grants.net.iter().map(ToString::to_string).collect(),
        exec: grants.exec.clone(),
        exec_env: grants
            .exec_env
            .iter()
            .filter(|name| !grants.exec_env_unchecked.contains(name))
            .cloned()
            .collect(),
        exec_env_unchecked: grants.exec_env_unchecked.clone(),
        env: grants.env.clone(),
        secrets: grants.secrets.clone(),
    }
}

/// Once the attempt ended with `status`: what its ending means for the lesson, and every entry
/// masked like the rest of its record (a refused name can carry a secret's value).
pub fn conclude(
    learned: &mut LearnedGrants,
    grants: &Grants,
    status: StageStatus,
    masker: &Masker,
) {
    if status != StageStatus::Succeeded {
        if !learned.learned.is_empty() {
            learned.not_learned.push(format!(
                "what it does after a refusal (it {}, maybe at the first one): paste this table and run with --learn again",
                status.label()
            ));
        }
        if grants.workspace == Access::None && learned.learned.workspace.is_none() {
            learned.not_learned.push(
                "files and folders outside its mounts, refused inside the plugin unseen by sluice (reads the project checkout? add `workspace = \"read\"`)".to_string(),
            );
        }
        learned.not_learned.push(
            "variables read straight from its environment (std::env::var): only those asked through sluice_sdk::env are seen".to_string(),
        );
    }
    let mask = |list: &mut Vec<String>| {
        for item in list {
            *item = masker.mask(item).into_owned();
        }
    };
    for table in [&mut learned.learned, &mut learned.proposed] {
        mask(&mut table.net);
        mask(&mut table.exec);
        mask(&mut table.exec_env);
        mask(&mut table.env);
        mask(&mut table.secrets);
    }
    mask(&mut learned.not_learned);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::grants::NetGrant;

    fn wanted(key: GrantKey, entry: &str, what: &str) -> Wanted {
        Wanted {
            what: what.into(),
            key,
            entry: entry.into(),
        }
    }

    #[test]
    fn proposes_its_own_grants_plus_exactly_what_it_was_refused() {
        let mut grants = Grants::none();
        grants.workspace = Access::Read;
        grants.exec = vec!["git".into()];
        grants.net = vec![NetGrant {
            host: "crates.io".into(),
            port: 443,
        }];
        let refused = [
            wanted(
                GrantKey::Net,
                "127.0.0.1:8080",
                "HTTP GET http://127.0.0.1:8080/x",
            ),
            wanted(
                GrantKey::Net,
                "127.0.0.1:8080",
                "socket TcpConnect to 127.0.0.1:8080",
            ),
            wanted(GrantKey::Exec, "cargo", "exec of `cargo`"),
            wanted(
                GrantKey::Workspace,
                "read",
                "running `cargo` in `/workspace`",
            ),
            wanted(GrantKey::Env, "GREETING", "env `GREETING`"),
            wanted(GrantKey::Secrets, "TOKEN", "secret `TOKEN`"),
            wanted(
                GrantKey::ExecEnv,
                "NO_COLOR",
                "setting `NO_COLOR` for `cargo`",
            ),
        ];
        let denied: Vec<String> = refused
            .iter()
            .map(|w| w.what.clone())
            .chain(["name lookup of `example.com`".to_string()])
            .collect();
        let lesson = lesson(&grants, &refused, &denied);
        assert_eq!(lesson.learned.net, ["127.0.0.1:8080"]);
        assert_eq!(lesson.learned.exec, ["cargo"]);
        assert_eq!(lesson.learned.env, ["GREETING"]);
        assert_eq!(lesson.learned.secrets, ["TOKEN"]);
        assert_eq!(lesson.learned.exec_env, ["NO_COLOR"]);
        // It had the workspace already: nothing to learn there.
        assert_eq!(lesson.learned.workspace, None);
        assert_eq!(lesson.proposed.net, ["crates.io:443", "127.0.0.1:8080"]);
        assert_eq!(lesson.proposed.exec, ["git", "cargo"]);
        assert_eq!(lesson.proposed.workspace.as_deref(), Some("read"));
        assert_eq!(
            lesson.not_learned,
            [
                "name lookup of `example.com`: which port it would connect to is unknown (grant `example.com:PORT` in `net`)"
            ]
        );
    }

    #[test]
    fn what_pipeline_toml_could_not_grant_is_not_proposed() {
        let refused = [
            wanted(
                GrantKey::Env,
                "SLUICE_NATS_PASSWORD",
                "env `SLUICE_NATS_PASSWORD`",
            ),
            wanted(GrantKey::Env, "A-B", "env `A-B`"),
            wanted(GrantKey::ExecEnv, "FOO_HOME", "setting `FOO_HOME` for `x`"),
        ];
        let denied: Vec<String> = refused.iter().map(|w| w.what.clone()).collect();
        let lesson = lesson(&Grants::none(), &refused, &denied);
        assert!(lesson.learned.is_empty(), "{lesson:?}");
        assert_eq!(lesson.not_learned.len(), 3, "{lesson:?}");
        assert!(
            lesson.not_learned[0].contains("sluice's own settings"),
            "{lesson:?}"
        );
        assert!(
            lesson.not_learned[2].contains("exec_env_unchecked"),
            "{lesson:?}"
        );
    }

    #[test]
    fn a_stage_that_asked_for_the_workspace_gets_it_read_only() {
        let refused = [wanted(
            GrantKey::Workspace,
            "read",
            "running `make` in `/workspace/src`",
        )];
        let lesson = lesson(&Grants::none(), &refused, &[refused[0].what.clone()]);
        assert_eq!(lesson.learned.workspace.as_deref(), Some("read"));
        assert_eq!(lesson.proposed.workspace.as_deref(), Some("read"));
        assert!(lesson.not_learned.is_empty(), "{lesson:?}");
    }

    #[test]
    fn an_entry_it_already_has_is_not_learned_again() {
        let mut grants = Grants::none();
        grants.exec = vec!["echo".into()];
        let refused = [wanted(GrantKey::Exec, "echo", "exec of `echo`")];
        let lesson = lesson(&grants, &refused, &[]);
        assert!(lesson.learned.is_empty());
        assert_eq!(lesson.proposed.exec, ["echo"]);
    }

    #[test]
    fn a_stage_that_did_not_succeed_says_what_it_may_not_have_shown() {
        let refused = [wanted(GrantKey::Exec, "echo", "exec of `echo`")];
        let masker = Masker::default();
        let mut failed = lesson(&Grants::none(), &refused, &[]);
        conclude(&mut failed, &Grants::none(), StageStatus::Failed, &masker);
        assert!(
            failed.not_learned[0].contains("run with --learn again"),
            "{failed:?}"
        );
        assert!(
            failed
                .not_learned
                .iter()
                .any(|l| l.contains("workspace = \"read\""))
        );
        let mut succeeded = lesson(&Grants::none(), &[], &[]);
        conclude(
            &mut succeeded,
            &Grants::none(),
            StageStatus::Succeeded,
            &masker,
        );
        assert!(succeeded.not_learned.is_empty());
    }
}
