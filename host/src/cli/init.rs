//! `sluice init`: says what `sluice::scaffold::init` wrote for the project in a folder, and the
//! two commands to try it.

use std::path::Path;

use crate::error::{CliError, Outcome, done};

/// `sluice init`: the pipeline and stages written, and the two commands to try it.
pub fn init(dir: &Path, force: bool) -> Outcome {
    let made = sluice::scaffold::init::init(dir, force)
        .map_err(|err| CliError::input(format!("{err:#}")))?;
    println!("wrote {} for a {}", made.pipeline.display(), made.kind);
    for stage in &made.stages {
        println!("  stage {}", stage.display());
    }
    for note in &made.notes {
        println!("  {note}");
    }
    let pipeline = sluice::shell::quote(&made.pipeline.display().to_string());
    println!("\ncheck it:\n  sluice check {pipeline}\nrun it:\n  sluice run {pipeline}");
    done()
}
