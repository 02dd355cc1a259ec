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
        SecretSource::File(path) => {
            let bytes = crate::config::files::read_bounded(
                path,
                crate::config::files::MAX_SECRET_FILE_BYTES,
            )
            .map_err(|err| format!("{} {err}", path.display()))?;
            String::from_utf8(bytes)
                .map_err(|_| format!("{} is not UTF-8 text", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        }
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
        let mut masked: Vec<String> = Vec::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            // A multi-line value (a PEM key) is printed line by line by most tools: each of its
            // lines is masked on its own too (but not armor lines, which are public).
            if value.contains('\n') {
                masked.extend(
                    value
                        .lines()
                        .map(|line| line.trim_end_matches('\r'))
                        .filter(|line| {
                            line.chars().count() >= MIN_SECRET_LEN && !line.starts_with("-----")
                        })
                        .map(str::to_string),
                );
            }
            masked.push(value);
        }
        // Longest first, so a secret containing another is masked whole.
        masked.sort_by_key(|v| std::cmp::Reverse(v.len()));
        masked.dedup();
        Self(Arc::new(masked))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of the longest masked value (0 when there is none).
    pub fn longest(&self) -> usize {
        self.0.first().map_or(0, String::len)
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

    /// [`Self::mask`] on raw bytes, which need not be UTF-8.
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for value in self.0.iter() {
            let needle = value.as_bytes();
            let mut at = 0;
            while let Some(found) = out[at..].windows(needle.len()).position(|w| w == needle) {
                let start = at + found;
                out.splice(start..start + needle.len(), *b"***");
                at = start + 3;
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

    /// Whether what `reader` yields contains any secret value, read in bounded chunks (a value
    /// cut between two chunks is still found).
    pub fn found_in_reader(&self, mut reader: impl std::io::Read) -> std::io::Result<bool> {
        const CHUNK: usize = 256 << 10;
        let keep = self.longest().saturating_sub(1);
        let mut window: Vec<u8> = Vec::with_capacity(CHUNK + keep);
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            window.extend_from_slice(&chunk[..n]);
            if self.found_in(&window) {
                return Ok(true);
            }
            let drop = window.len().saturating_sub(keep);
            window.drain(..drop);
        }
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
    fn multi_line_values_are_masked_line_by_line_and_found_across_chunks() -> std::io::Result<()> {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END PRIVATE KEY-----";
        let masker = Masker::new([pem.to_string()]);
        assert_eq!(
            masker.mask("key line: MIIEvQIBADANBgkqhkiG9w0B"),
            "key line: ***"
        );
        assert_eq!(
            masker.mask("-----BEGIN PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----"
        );
        assert_eq!(
            masker.mask_bytes(b"a\xffAQEFAASCBKcwggSjAgEAAoIB!"),
            b"a\xff***!"
        );
        // The value straddles the 256 KiB chunk boundary.
        let mut big = vec![b'x'; (256 << 10) - 5];
        big.extend_from_slice(b"MIIEvQIBADANBgkqhkiG9w0B tail");
        assert!(masker.found_in_reader(big.as_slice())?);
        assert!(!masker.found_in_reader(&vec![b'x'; 600 << 10][..])?);
        Ok(())
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
                .contains("does not exist")
        );
        assert!(values.get("UNDECLARED").is_err());
        assert_eq!(values.masker().mask("x from-file-value y"), "x *** y");
        Ok(())
    }
}
