//! Secrets: loading declared values from the host environment or files, and masking them as
//! `***` wherever sluice writes or shows text.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::grants::SecretSource;

/// Shorter values would mask ordinary text; they are refused when loaded.
pub const MIN_SECRET_LEN: usize = 4;

/// The loaded values, by name. Values that could not be loaded carry why.
#[derive(Debug, Clone, Default)]
pub struct SecretValues {
    values: BTreeMap<String, Result<String, String>>,
}

impl SecretValues {
    /// Loads every declared secret. A failure is kept per secret and reported only for stages
    /// granted that secret.
    pub fn load(declared: &BTreeMap<String, SecretSource>) -> Self {
        let values = declared
            .iter()
            .map(|(name, source)| (name.clone(), load_one(source)))
            .collect();
        Self { values }
    }

    /// The value of `name`, or why it is unavailable.
    pub fn get(&self, name: &str) -> Result<&str, String> {
        match self.values.get(name) {
            Some(Ok(value)) => Ok(value),
            Some(Err(why)) => Err(why.clone()),
            None => Err(format!("secret `{name}` is not declared")),
        }
    }

    /// A masker for every successfully loaded value.
    pub fn masker(&self) -> Masker {
        Masker::new(
            self.values
                .values()
                .filter_map(|v| v.as_ref().ok().cloned()),
        )
    }
}

fn load_one(source: &SecretSource) -> Result<String, String> {
    let value = match source {
        SecretSource::Env(var) => std::env::var(var).map_err(|_| {
            format!("environment variable `{var}` is not set (set it before running sluice)")
        })?,
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?,
    };
    if value.chars().count() < MIN_SECRET_LEN {
        return Err(format!(
            "its value is shorter than {MIN_SECRET_LEN} characters, too short to mask in logs safely"
        ));
    }
    Ok(value)
}

/// Replaces secret values with `***`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Masker(Arc<Vec<String>>);

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        // Longest first, so a secret containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self(Arc::new(values))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for value in self.0.iter() {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), "***"));
            }
        }
        out
    }

    /// Whether `bytes` contain any secret value verbatim.
    pub fn found_in(&self, bytes: &[u8]) -> bool {
        self.0.iter().any(|value| {
            let needle = value.as_bytes();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_longest_first_and_finds_in_bytes() {
        let masker = Masker::new(["hunter2-long".to_string(), "hunter2".to_string()]);
        assert_eq!(masker.mask("pw=hunter2-long; hunter2!"), "pw=***; ***!");
        assert_eq!(masker.mask("nothing here"), "nothing here");
        assert!(masker.found_in(b"xx hunter2 yy"));
        assert!(!masker.found_in(b"hunter"));
    }

    #[test]
    fn loads_from_env_and_file_and_explains_failures() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file-value\n")?;
        let mut declared = BTreeMap::new();
        declared.insert("F".to_string(), SecretSource::File(file));
        declared.insert(
            "MISSING".to_string(),
            SecretSource::Env("SLUICE_TEST_SURELY_UNSET_VARIABLE".into()),
        );
        declared.insert(
            "NOFILE".to_string(),
            SecretSource::File(dir.path().join("nope")),
        );
        let values = SecretValues::load(&declared);
        assert_eq!(values.get("F"), Ok("from-file-value"));
        assert!(
            values
                .get("MISSING")
                .err()
                .unwrap_or_default()
                .contains("is not set")
        );
        assert!(
            values
                .get("NOFILE")
                .err()
                .unwrap_or_default()
                .contains("cannot read")
        );
        assert!(values.get("UNDECLARED").is_err());
        assert_eq!(values.masker().mask("x from-file-value y"), "x *** y");
        Ok(())
    }
}
