//! `sluice runs flaky`: the tests the run history proves flaky — each passed and failed under
//! the same stage key — with how often and in which runs; and how many test-stage runs had no
//! recorded key and so could not be counted (the stage cache was off, or the stage is not
//! cached).

use sluice::exit_codes;
use sluice::model::report::RunReport;
use sluice::model::text::one_line;
use sluice::reporters::flaky::flaky_history;

use crate::error::{CliError, Outcome};

/// Prints the flaky tests of `reports` (as JSON with `json`).
pub fn flaky(reports: &[RunReport], json: bool) -> Outcome {
    let history = flaky_history(reports);
    if json {
        let text = serde_json::to_string_pretty(&history).map_err(CliError::internal)?;
        println!("{text}");
        return Ok(exit_codes::SUCCESS);
    }
    if history.flaky.is_empty() {
        println!(
            "no test both passed and failed under the same stage key in {} runs",
            history.runs
        );
    } else {
        println!("flaky tests (passed and failed on identical inputs: the same stage key):");
    }
    for found in &history.flaky {
        println!(
            "  {}  stage `{}` of {}, key {:.12}…: failed {}× (runs {}), passed {}× (runs {})",
            one_line(&found.test, 200),
            one_line(&found.stage, 64),
            one_line(&found.pipeline, 64),
            found.key,
            found.failed,
            found.failed_in.join(", "),
            found.passed,
            found.passed_in.join(", "),
        );
    }
    if history.without_key > 0 {
        println!(
            "not considered: {} test-stage runs with no recorded stage key (the stage cache was \
             off, or the stage is not cached); give test stages `cache = true` and run without \
             --no-stage-cache so their keys are recorded",
            history.without_key
        );
    }
    Ok(exit_codes::SUCCESS)
}
