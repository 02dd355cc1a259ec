//! Who is who in a cluster: this machine's ed25519 key (the same key files as `sluice key
//! generate`; made on first use at `~/.local/share/sluice/cluster.key`, its public half beside it
//! as `cluster.pub`), the coordinator keys an agent takes jobs and stops from, and the agent keys a
//! coordinator takes results from — each optionally only for stages whose `runs_on` labels it
//! was trusted with. A machine always trusts its own key in both roles, so one user's agents and
//! coordinators on one machine need no setup.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::trust::signing::{SigningKey, TrustedKey, generate_key_pair};

/// A key trusted to record stages: any stage, or only those whose labels are all in `labels`.
#[derive(Debug, Clone)]
pub struct TrustedAgent {
    pub key: TrustedKey,
    /// `None`: any stage; else only stages whose `runs_on` is a subset of these.
    pub labels: Option<BTreeSet<String>>,
}

impl TrustedAgent {
    /// Whether this key may record a stage that needs `runs_on`.
    pub fn may_record(&self, runs_on: &[String]) -> bool {
        self.labels
            .as_ref()
            .is_none_or(|labels| runs_on.iter().all(|l| labels.contains(l)))
    }
}

/// This machine's key, and whom it trusts.
#[derive(Debug, Clone)]
pub struct ClusterTrust {
    pub own: Arc<SigningKey>,
    /// Where the own key's public half is, to say so.
    pub own_public: PathBuf,
    /// Keys whose jobs and stops an agent takes (its own first).
    pub coordinators: Vec<TrustedKey>,
    /// Keys whose results a coordinator adopts (its own first, for any stage).
    pub agents: Vec<TrustedAgent>,
}

/// Where the cluster key is when `--cluster-key` does not say.
pub fn default_key_path() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join("sluice").join("cluster.key"))
}

impl ClusterTrust {
    /// The key at `key_file` (made there on first use when it is the default one), trusting
    /// `coordinators` and `agents` (`FILE` or `FILE=label,label`) besides itself.
    pub fn load(
        key_file: Option<&Path>,
        coordinators: &[PathBuf],
        agents: &[String],
    ) -> Result<Self> {
        let (path, made_here) = match key_file {
            Some(path) => (path.to_path_buf(), false),
            None => (
                default_key_path().context(
                    "no folder for this machine's cluster key; give one with --cluster-key FILE",
                )?,
                true,
            ),
        };
        if made_here && !path.exists() {
            make_key(&path)?;
        }
        let own = SigningKey::from_file(&path).with_context(|| {
            format!(
                "this machine's cluster key; make one with `sluice key generate {}`",
                path.with_extension("").display()
            )
        })?;
        let own_public = path.with_extension("pub");
        let own_trusted = own.public(&path);
        let mut trusted_coordinators = vec![own_trusted.clone()];
        for file in coordinators {
            trusted_coordinators
                .push(TrustedKey::from_file(file).context("a key given with --trust-coordinator")?);
        }
        let mut trusted_agents = vec![TrustedAgent {
            key: own_trusted,
            labels: None,
        }];
        for spec in agents {
            trusted_agents.push(parse_agent(spec)?);
        }
        Ok(Self {
            own: Arc::new(own),
            own_public,
            coordinators: trusted_coordinators,
            agents: trusted_agents,
        })
    }

    /// A trust that knows only `key` (for tests and one-machine tools).
    pub fn of_key(key: SigningKey) -> Self {
        let own = key.public(Path::new("(in memory)"));
        Self {
            own: Arc::new(key),
            own_public: PathBuf::new(),
            coordinators: vec![own.clone()],
            agents: vec![TrustedAgent {
                key: own,
                labels: None,
            }],
        }
    }

    /// The agent keys that may record a stage needing `runs_on`.
    pub fn agents_for(&self, runs_on: &[String]) -> Vec<&TrustedKey> {
        self.agents
            .iter()
            .filter(|a| a.may_record(runs_on))
            .map(|a| &a.key)
            .collect()
    }

    /// The coordinator keys.
    pub fn coordinator_keys(&self) -> Vec<&TrustedKey> {
        self.coordinators.iter().collect()
    }
}

/// `FILE` or `FILE=label,label`.
fn parse_agent(spec: &str) -> Result<TrustedAgent> {
    let (file, labels) = match spec.rsplit_once('=') {
        Some((file, labels)) => {
            let labels: BTreeSet<String> = labels
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            for label in &labels {
                super::jobs::check_label(label)
                    .with_context(|| format!("in --trust-agent {spec}"))?;
            }
            if labels.is_empty() {
                bail!("--trust-agent {spec}: no labels after `=`; write FILE or FILE=label,label");
            }
            (file, Some(labels))
        }
        None => (spec, None),
    };
    Ok(TrustedAgent {
        key: TrustedKey::from_file(Path::new(file)).context("a key given with --trust-agent")?,
        labels,
    })
}

/// Makes the default key pair; another process making it at the same moment is fine.
fn make_key(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    match generate_key_pair(&path.with_extension("")) {
        Ok(_) => Ok(()),
        Err(_) if path.exists() => Ok(()),
        Err(err) => Err(err.context("cannot make this machine's cluster key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_trusted_for_some_labels_records_only_stages_within_them() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (_, public, _) = generate_key_pair(&dir.path().join("linux-agent"))?;
        let agent = parse_agent(&format!("{}=linux,cargo", public.display()))?;
        assert!(agent.may_record(&[]));
        assert!(agent.may_record(&["linux".into()]));
        assert!(!agent.may_record(&["release-signer".into()]));
        assert!(!agent.may_record(&["linux".into(), "release-signer".into()]));
        let any = parse_agent(&public.display().to_string())?;
        assert!(any.may_record(&["release-signer".into()]));
        assert!(parse_agent(&format!("{}=", public.display())).is_err());
        Ok(())
    }

    #[test]
    fn a_given_key_that_does_not_exist_is_an_error_not_a_new_key() {
        let dir = std::env::temp_dir().join("sluice-no-such-cluster-key.key");
        assert!(ClusterTrust::load(Some(&dir), &[], &[]).is_err());
        assert!(!dir.exists());
    }
}
