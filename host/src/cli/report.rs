//! `sluice report`: a run's web page (report.html in its run folder), written again on demand and
//! opened in the browser if asked; every run writes it when it ends too ([`write_html`]).

use std::path::{Path, PathBuf};

use sluice::model::report::RunReport;

use crate::error::{CliError, Outcome, done};
use crate::run_dirs::read_run;

/// `sluice report RUN [--open]`: (re)writes the run's web page and prints where it is.
pub fn report(run: &str, runs_dir: Option<&Path>, open: bool) -> Outcome {
    let (_, report) = read_run(run, runs_dir)?;
    let path =
        write_html(&report).ok_or_else(|| CliError::internal("the report page was not written"))?;
    println!("{}", path.display());
    if open {
        let opened = std::process::Command::new("xdg-open")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .status();
        if !opened.is_ok_and(|s| s.success()) {
            eprintln!(
                "sluice: cannot open a browser here (xdg-open); open {} yourself",
                path.display()
            );
        }
    }
    done()
}

/// Writes the run's web page (`report.html`) into its folder; says so on stderr when it cannot
/// (the run's record, report.json, is what counts).
pub fn write_html(report: &RunReport) -> Option<PathBuf> {
    let path = Path::new(&report.run_dir).join("report.html");
    let page = sluice::reporters::report_html(report);
    match sluice::atomic_file::write(&path, page.as_bytes()) {
        Ok(()) => Some(path),
        Err(err) => {
            eprintln!("sluice: cannot write {}: {err:#}", path.display());
            None
        }
    }
}
