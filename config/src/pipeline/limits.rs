//! Reading `[pipeline.limits]` and `[stage.limits]`: durations and sizes as users write them
//! ("10m", "512 MiB"), on top of the pipeline's or the built-in defaults.

use std::time::Duration;

use toml::Spanned;

use super::raw::RawLimits;
use crate::diagnostic::Diagnostic;
use crate::limits::{Limits, fmt_bytes};
use crate::source::Source;

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
