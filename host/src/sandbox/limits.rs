//! Enforcing a stage's memory limit inside wasmtime, and remembering that it was the limit —
//! not a bug — that stopped the stage, so the report can say exactly that.

/// The `ResourceLimiter` of one stage's store.
#[derive(Debug)]
pub struct StageLimiter {
    memory_limit: u64,
    /// Bytes of linear memory currently in use, over all the component's memories.
    memory_in_use: u64,
    /// Set when a growth was refused for exceeding the limit.
    pub memory_exceeded: bool,
}

/// Table elements are host memory too; this many is far beyond any real program.
const MAX_TABLE_ELEMENTS: usize = 10_000_000;

impl StageLimiter {
    pub fn new(memory_limit: u64) -> Self {
        Self {
            memory_limit,
            memory_in_use: 0,
            memory_exceeded: false,
        }
    }
}

impl wasmtime::ResourceLimiter for StageLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self
            .memory_in_use
            .saturating_sub(current as u64)
            .saturating_add(desired as u64);
        if after > self.memory_limit {
            self.memory_exceeded = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded",
                self.memory_limit
            ));
        }
        self.memory_in_use = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn counts_all_memories_and_flags_the_limit() {
        let mut limiter = StageLimiter::new(100);
        assert!(matches!(limiter.memory_growing(0, 60, None), Ok(true)));
        assert!(matches!(limiter.memory_growing(0, 30, None), Ok(true)));
        assert!(!limiter.memory_exceeded);
        assert!(limiter.memory_growing(30, 50, None).is_err());
        assert!(limiter.memory_exceeded);
        assert!(matches!(limiter.memory_growing(60, 70, None), Ok(true)));
    }
}
