//! The process exit codes of `sluice`, one per outcome a script or CI system may need to tell
//! apart. Documented in the README; never reuse a number for another meaning.

/// The pipeline ran to the end, every stage succeeded (or `check` found nothing wrong).
pub const SUCCESS: i32 = 0;
/// A stage ran and reported failure (`err(failure)`): tests red, a check failed, ...
pub const STAGE_FAILED: i32 = 1;
/// The command line or the pipeline file is invalid; nothing ran.
pub const INVALID_INPUT: i32 = 2;
/// A stage's plugin crashed: it trapped or panicked.
pub const STAGE_CRASHED: i32 = 3;
/// The host could not run a stage: plugin missing, not a component, wrong world, broken output
/// contract, or a limit (such as the timeout) stopped it.
pub const STAGE_ERROR: i32 = 4;
/// The run stopped at a manual gate (`approval = "manual"`) nobody approved; continue it with
/// `sluice resume RUN_ID --approve STAGE`.
pub const AWAITING_APPROVAL: i32 = 5;
/// A plugin was refused before anything ran: a registry plugin not found, changed since it was
/// pinned (digest mismatch), not signed by a trusted key, or missing from the store with
/// `--offline`; or a plugin that asks for more than pipeline.lock records (not accepted).
pub const PLUGIN_REFUSED: i32 = 6;
/// sluice itself failed (I/O on the run directory, an internal bug). Please report it.
pub const INTERNAL_ERROR: i32 = 70;

/// All codes with a one-line meaning, for `--help` and the README.
pub const TABLE: &[(i32, &str)] = &[
    (SUCCESS, "every stage succeeded / the check passed"),
    (STAGE_FAILED, "a stage reported failure"),
    (
        INVALID_INPUT,
        "invalid command line, pipeline file, lock or key file; nothing ran",
    ),
    (STAGE_CRASHED, "a stage's plugin trapped or panicked"),
    (
        STAGE_ERROR,
        "the host could not run a stage (plugin, contract or limit)",
    ),
    (
        AWAITING_APPROVAL,
        "stopped at a manual gate; `sluice resume` continues it",
    ),
    (
        PLUGIN_REFUSED,
        "a plugin was refused (missing, tampered, unsigned, or asking for more than pipeline.lock records); nothing ran",
    ),
    (INTERNAL_ERROR, "sluice itself failed"),
];
