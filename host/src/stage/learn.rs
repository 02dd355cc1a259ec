//! `sluice run --learn`, for one stage: from what its sandbox refused (each refusal a grant would
//! have allowed is recorded with that grant), the smallest `[stage.allow]` table that allows it
//! all — its own grants plus exactly the entries it asked for, never a wildcard — and what the
//! run could not show.

use crate::config::grants::{Access, Grants};
use crate::model::learned::{AllowTable, LearnedGrants};
use crate::model::report::StageStatus;
use crate::sandbox::net::{GrantKey, Wanted};
use crate::trust::secrets::Masker;

/// What stage with `grants` was refused (`wanted`), among everything it was refused (`denied`).
pub fn lesson(grants: &Grants, wanted: &[Wanted], denied: &[String]) -> LearnedGrants {
    let mut learned = AllowTable::default();
    let mut proposed = own_table(grants);
    for want in wanted {
        let (new, all) = match want.key {
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
    let not_learned = denied
        .iter()
        .filter(|what| !wanted.iter().any(|want| &want.what == *what))
        .map(|what| unlearnable(what))
        .collect();
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

/// Why a refusal no grant entry allows was not learned.
fn unlearnable(what: &str) -> String {
    if what.starts_with("name lookup of ") {
        format!(
            "{what}: the port it would connect to is unknown; grant `NAME:PORT` in `net` if it needs it"
        )
    } else {
        format!("{what}: no [stage.allow] entry allows it")
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
pub fn conclude(learned: &mut LearnedGrants, grants: &Grants, status: StageStatus, masker: &Masker) {
    if status != StageStatus::Succeeded {
        if !learned.learned.is_empty() {
            learned.not_learned.push(format!(
                "the stage {}, maybe at its first refusal, so what it would do next is unknown: paste this table and run with --learn again",
                status.label()
            ));
        }
        if grants.workspace == Access::None {
            learned.not_learned.push(
                "files and folders: a path outside the stage's folders is refused inside the plugin, where sluice cannot see it; if it reads the project checkout, add `workspace = \"read\"`".to_string(),
            );
        }
        learned.not_learned.push(
            "variables read from the plugin's own environment (std::env::var, os.environ) are not seen; only those asked through sluice_sdk::env are learned".to_string(),
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
