//! The live terminal view: one line per stage with a spinner and elapsed time, a final mark,
//! and the stages' output scrolling above, each line tagged with its stage.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Reporter, Verbosity, fmt_elapsed, mark, shows_log};
use crate::model::events::Event;
use crate::model::report::{RunStatus, StageStatus};

pub struct TerminalReporter {
    verbosity: Verbosity,
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    width: usize,
}

impl TerminalReporter {
    pub fn new(verbosity: Verbosity) -> Self {
        Self {
            verbosity,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            width: 8,
        }
    }

    fn println(&self, text: String) {
        let _ = self.multi.println(text);
    }

    fn waiting_style() -> ProgressStyle {
        ProgressStyle::with_template("  {prefix:.dim} {msg:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn running_style() -> ProgressStyle {
        ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {elapsed_precise:.dim} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    fn done_style() -> ProgressStyle {
        ProgressStyle::with_template("{prefix} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    }
}

impl Reporter for TerminalReporter {
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                pipeline,
                stages,
                ..
            } => {
                self.width = stages.iter().map(String::len).max().unwrap_or(8);
                self.println(format!("sluice ▸ {pipeline} (run {run_id})"));
                for stage in stages {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(Self::waiting_style());
                    bar.set_prefix(format!("{stage:<w$}", w = self.width));
                    bar.set_message("waiting");
                    self.bars.insert(stage.clone(), bar);
                }
            }
            Event::PluginResolved { .. } => {
                if let (Some((stage, text)), false) =
                    (event.resolution_line(), self.verbosity == Verbosity::Quiet)
                {
                    self.println(format!("  {stage}: {text}"));
                }
            }
            Event::LockWritten { path, changes } => {
                self.println(format!("  wrote {}", path.display()));
                for change in changes {
                    self.println(format!("    {change}"));
                }
            }
            Event::PluginReady {
                stage,
                cache_hit,
                load_time,
                ..
            } => {
                if let Some(bar) = self.bars.get(stage) {
                    let how = if *cache_hit { "cached" } else { "compiled" };
                    bar.set_message(format!(
                        "waiting · plugin {how} in {}",
                        fmt_elapsed(*load_time)
                    ));
                }
            }
            Event::StageStarted { stage } => {
                if let Some(bar) = self.bars.get(stage) {
                    bar.set_style(Self::running_style());
                    bar.set_message("running");
                    bar.enable_steady_tick(Duration::from_millis(80));
                }
            }
            Event::Log {
                stage,
                source,
                line,
            } => {
                if shows_log(self.verbosity, *source) {
                    self.println(format!("  {stage:>w$} │ {line}", w = self.width));
                }
            }
            Event::ArtifactWritten { stage, artifact } => {
                if self.verbosity == Verbosity::Verbose {
                    self.println(format!(
                        "  {stage:>w$} │ → {} ({} bytes, sha256 {:.12}…)",
                        artifact.name,
                        artifact.size,
                        artifact.sha256,
                        w = self.width
                    ));
                }
            }
            Event::StageFinished {
                stage,
                status,
                elapsed,
                message,
            } => {
                if let Some(bar) = self.bars.get(stage) {
                    bar.set_style(Self::done_style());
                    bar.set_prefix(format!("{} {stage:<w$}", mark(*status), w = self.width));
                    let mut text = status.label().to_string();
                    if *status != StageStatus::Skipped {
                        text.push_str(&format!(" in {}", fmt_elapsed(*elapsed)));
                    }
                    if let Some(message) = message {
                        text.push_str(&format!(" · {message}"));
                    }
                    bar.finish_with_message(text);
                }
            }
            Event::RunFinished {
                status,
                stopped_by,
                elapsed,
                report,
                provenance,
            } => {
                let mark = if *status == RunStatus::Succeeded {
                    "✔"
                } else {
                    "✘"
                };
                let verdict = format!("{mark} {}", super::verdict(*status, stopped_by.as_deref()));
                // Every bar is finished by now, so this lands below them.
                for bar in self.bars.values() {
                    if !bar.is_finished() {
                        bar.abandon();
                    }
                }
                if let Some(provenance) = provenance {
                    eprintln!("  provenance: {provenance}");
                }
                eprintln!(
                    "{verdict} · {} · report {}",
                    fmt_elapsed(*elapsed),
                    report.display()
                );
            }
        }
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
