//! A job's identity and lifetime: a random id (a second queue message with it is a replay),
//! an expiry after which no agent runs it, and whether one sent before may be sent again.

use std::time::SystemTime;

use anyhow::Result;

use super::JOB_LIFETIME;
use crate::cluster::sealed::open;
use crate::cluster::wire::StageJob;
use crate::stage::StageExecution;

/// Whether a job this coordinator sent before is its own and has not expired.
pub(super) fn still_runnable(sealed: &[u8], own: &crate::trust::signing::SigningKey) -> bool {
    let key = own.public(std::path::Path::new("(own key)"));
    open::<StageJob>(sealed, crate::cluster::wire::KIND_JOB, &[&key]).is_ok_and(|job| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // With room for an agent to take it.
        job.value.expires_at > now + 60
    })
}

/// 16 random bytes, hex: a job's id.
pub(super) fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|err| anyhow::anyhow!("no randomness for a job id: {err}"))?;
    Ok(hex::encode(bytes))
}

/// When a job sent now stops being runnable: an hour, plus the stage's timeout for each time
/// the queue may deliver it.
pub(super) fn expiry(exec: &StageExecution<'_>) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let per_try = exec.stage.limits.timeout.as_secs();
    now + JOB_LIFETIME.as_secs() + per_try.saturating_mul(u64::from(exec.stage.retries) + 4)
}
