//! What `sluice run --learn` learned about one stage, as kept in its record: the grants it was
//! refused, the `[stage.allow]` table that would have allowed them (its own grants plus those),
//! and what could not be learned — and that table as TOML to paste into pipeline.toml.

use serde::{Deserialize, Serialize};

/// One stage's lesson from a run with `--learn`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LearnedGrants {
    /// Only what it was refused and a grant would allow, by `[stage.allow]` key.
    pub learned: AllowTable,
    /// Its own `[stage.allow]` with `learned` added: the table to paste in place of its own.
    pub proposed: AllowTable,
    /// Keys of its own table the proposal does not write out (`dirs`, `caches`): kept as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
    /// What no grant it could be proposed would have allowed, or what the run could not show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_learned: Vec<String>,
}

/// The keys of a `[stage.allow]` table `--learn` writes, in the order it writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllowTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_env_unchecked: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl AllowTable {
    /// Whether it grants nothing.
    pub fn is_empty(&self) -> bool {
        self.workspace.is_none() && self.lists().iter().all(|(_, list)| list.is_empty())
    }

    /// Its lists by key, in the order they are written.
    pub fn lists(&self) -> [(&'static str, &Vec<String>); 6] {
        [
            ("net", &self.net),
            ("exec", &self.exec),
            ("exec_env", &self.exec_env),
            ("exec_env_unchecked", &self.exec_env_unchecked),
            ("env", &self.env),
            ("secrets", &self.secrets),
        ]
    }
}

impl LearnedGrants {
    /// The proposal for stage `stage` as a person reads it: the `[stage.allow]` table to paste
    /// (when anything was learned) and one line per thing that was not learned.
    pub fn to_text(&self, stage: &str) -> String {
        let mut text = String::new();
        if self.learned.is_empty() {
            text.push_str(&format!(
                "# stage `{stage}`: nothing to add (it was refused nothing a grant would allow)\n"
            ));
        } else {
            text.push_str(&format!(
                "[stage.allow]   # stage `{stage}`: replaces its allow table\n"
            ));
            if let Some(access) = &self.proposed.workspace {
                text.push_str(&format!("workspace = {}\n", quoted(access)));
            }
            for (key, list) in self.proposed.lists() {
                if !list.is_empty() {
                    let items: Vec<String> = list.iter().map(|item| quoted(item)).collect();
                    text.push_str(&format!("{key} = [{}]\n", items.join(", ")));
                }
            }
            if !self.learned.secrets.is_empty() {
                text.push_str(&format!(
                    "# and declare {} in [secrets] (where each value comes from)\n",
                    self.learned.secrets.join(", ")
                ));
            }
            if !self.keep.is_empty() {
                text.push_str(&format!(
                    "# and keep this stage's {} lines as they are\n",
                    self.keep.join(" and ")
                ));
            }
        }
        for line in &self.not_learned {
            text.push_str(&format!("# could not learn: {line}\n"));
        }
        text
    }
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_table_toml_reads_back() -> anyhow::Result<()> {
        let learned = LearnedGrants {
            learned: AllowTable {
                net: vec!["127.0.0.1:8080".into()],
                env: vec!["GREETING".into()],
                ..AllowTable::default()
            },
            proposed: AllowTable {
                workspace: Some("read".into()),
                net: vec!["127.0.0.1:8080".into()],
                exec: vec!["say \"hi\"\\".into()],
                env: vec!["GREETING".into()],
                ..AllowTable::default()
            },
            keep: vec!["dirs".into()],
            not_learned: vec!["name lookup of `x`".into()],
        };
        let text = learned.to_text("fetch");
        let value: toml::Table = toml::from_str(&text)?;
        let allow = &value["stage"]["allow"];
        assert_eq!(allow["workspace"].as_str(), Some("read"));
        assert_eq!(allow["exec"][0].as_str(), Some("say \"hi\"\\"));
        assert_eq!(allow["net"][0].as_str(), Some("127.0.0.1:8080"));
        assert!(allow.get("secrets").is_none());
        assert!(
            text.contains("# could not learn: name lookup of `x`"),
            "{text}"
        );
        assert!(text.contains("keep this stage's dirs lines"), "{text}");
        let nothing = LearnedGrants::default().to_text("quiet");
        assert!(!nothing.contains("[stage.allow]"), "{nothing}");
        Ok(())
    }
}
