//! One JSON object per event on stdout (`--format json`), for tools that follow a run live.

use std::io::Write;

use super::Reporter;
use crate::model::events::Event;

#[derive(Debug, Default)]
pub struct JsonLinesReporter;

impl Reporter for JsonLinesReporter {
    fn event(&mut self, event: &Event) {
        let mut out = std::io::stdout().lock();
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(out, "{line}");
        }
    }
}
