//! How much a stage may use before the host stops it (`[pipeline.limits]`, `[stage.limits]`):
//! the defaults, and parsing of the durations and sizes users write ("10m", "512 MiB").

use std::time::Duration;

use toml::Spanned;

use crate::diagnostic::Diagnostic;
use crate::pipeline::raw::RawLimits;
use crate::source::Source;

/// How much a stage may use before the host stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    /// Linear memory, in bytes, summed over the component's memories.
    pub memory: u64,
    /// Bytes of log (stdout, stderr and `log` lines).
    pub log: u64,
    /// Number of declared outputs.
    pub outputs: u64,
    /// Total bytes of declared outputs.
    pub output_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30 * 60),
            memory: 1 << 30,
            log: 16 << 20,
            outputs: 10_000,
            output_size: 4 << 30,
        }
    }
}

/// Formats a byte count the way limits are written: `512 MiB`.
pub fn fmt_bytes(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

impl RawLimits {
    /// These limits on top of `base`.
    pub(crate) fn resolve(&self, base: Limits, src: &Source<'_>) -> Result<Limits, Diagnostic> {
        let defaults = Limits::default();
        let mut limits = base;
        if let Some(text) = &self.timeout {
            limits.timeout = parse_duration(text, "timeout", src)?;
        }
        if let Some(text) = &self.memory {
            limits.memory = parse_size(text, "memory", defaults.memory, src)?;
        }
        if let Some(text) = &self.log {
            limits.log = parse_size(text, "log", defaults.log, src)?;
        }
        if let Some(count) = &self.outputs {
            limits.outputs = u64::try_from(*count.get_ref()).map_err(|_| {
                src.error(
                    count.span(),
                    format!("`outputs` is {}; it must not be negative", count.get_ref()),
                )
                .with_hint("give the largest number of outputs the stage may declare (0 for none)")
            })?;
        }
        if let Some(text) = &self.output_size {
            limits.output_size = parse_size(text, "output_size", defaults.output_size, src)?;
        }
        Ok(limits)
    }
}

fn parse_duration(
    text: &Spanned<String>,
    key: &str,
    src: &Source<'_>,
) -> Result<Duration, Diagnostic> {
    match humantime::parse_duration(text.get_ref()) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(src
            .error(
                text.span(),
                format!("`{key}` is zero, which would stop every stage at once"),
            )
            .with_hint(format!(
                "use a positive duration such as \"90s\" or \"10m\", or remove `{key}` for the \
                 default ({})",
                humantime::format_duration(Limits::default().timeout)
            ))),
        Err(err) => Err(src
            .error(
                text.span(),
                format!("invalid duration `{}` for `{key}`: {err}", text.get_ref()),
            )
            .with_hint("write durations like \"90s\", \"10m\" or \"1h 30m\"")),
    }
}

fn parse_size(
    text: &Spanned<String>,
    key: &str,
    default: u64,
    src: &Source<'_>,
) -> Result<u64, Diagnostic> {
    match text.get_ref().trim().parse::<bytesize::ByteSize>() {
        Ok(size) if size.as_u64() > 0 => Ok(size.as_u64()),
        Ok(_) => Err(src
            .error(
                text.span(),
                format!("`{key}` is zero, which no stage could stay within"),
            )
            .with_hint(format!(
                "use a positive size such as \"64 MiB\", or remove `{key}` for the default ({})",
                fmt_bytes(default)
            ))),
        Err(_) => Err(src
            .error(
                text.span(),
                format!("invalid size `{}` for `{key}`", text.get_ref()),
            )
            .with_hint("write sizes like \"512 MiB\", \"2 GiB\" or \"64 KiB\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_formatted_like_limits_are_written() {
        assert_eq!(fmt_bytes(512 << 20), "512 MiB");
        assert_eq!(fmt_bytes(1 << 30), "1 GiB");
        assert_eq!(fmt_bytes(100), "100 B");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
    }
}
