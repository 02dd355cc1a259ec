//! How much a stage may use before the host stops it (`[pipeline.limits]`, `[stage.limits]`):
//! the defaults, and parsing of the durations and sizes users write ("10m", "512 MiB").

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How much a stage may use before the host stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
