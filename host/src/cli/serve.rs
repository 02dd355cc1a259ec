//! `sluice serve`: the web view of the runs folders (the server itself is `sluice::serve`).

use std::io::Write as _;
use std::path::PathBuf;

use sluice::model::layout::runs_home;
use sluice::serve::{ServeOptions, check};

use crate::error::{CliError, Outcome, done};
use crate::subcommands::ServeArgs;

pub async fn serve(args: ServeArgs) -> Outcome {
    let token = match &args.token_file {
        Some(file) => Some(read_token(file)?),
        None => None,
    };
    // Without --runs-dir: SLUICE_RUNS_DIR, else every pipeline's default runs folder (those
    // made later too).
    let env_dir = std::env::var_os("SLUICE_RUNS_DIR").map(PathBuf::from);
    let (runs_dirs, runs_home) = match (args.runs_dir.is_empty(), env_dir) {
        (false, _) => (args.runs_dir, None),
        (true, Some(dir)) => (vec![dir], None),
        (true, None) => (Vec::new(), runs_home()),
    };
    let folders = runs_dirs
        .iter()
        .chain(runs_home.iter())
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let options = ServeOptions {
        runs_dirs,
        runs_home,
        listen: args.listen,
        token,
    };
    check(&options).map_err(|err| CliError::input(format!("{err:#}")))?;
    // Ctrl-C or SIGTERM stops it.
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    sluice::serve::serve(
        options,
        |address| {
            println!("serving the runs of {folders} on http://{address}/ (Ctrl-C to stop)");
            let _ = std::io::stdout().flush();
        },
        stop,
    )
    .await
    .map_err(|err| CliError::internal(format!("{err:#}")))?;
    done()
}

fn read_token(file: &std::path::Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(file).map_err(|err| {
        CliError::input(format!(
            "cannot read the token file {}: {err}\n  = help: write a long random secret in it, \
             e.g. `head -c 32 /dev/urandom | base64 > {}`",
            file.display(),
            file.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::input(format!(
            "the token file {} is empty\n  = help: write a long random secret in it",
            file.display()
        )));
    }
    Ok(token.to_string())
}
