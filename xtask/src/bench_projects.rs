//! `cargo xtask bench-projects`: the macro benchmark on real open-source projects — semver from
//! crates.io, deep-is from npm, more-itertools from PyPI, as published — each through
//! `sluice init` + `sluice run`, beside the same commands run by hand, on the release build, in
//! alternating rounds, medians with p10/p90: cold (target: sluice ≤ 1.05× by hand), nothing
//! changed (target: ≤ 1000 ms) and one file touched (target: ≤ 1.5×), with the stages the stage
//! cache served or ran. Targets missed are reported, not failed; a run that fails fails.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

mod fetch;
mod project;
mod rounds;
mod stages;
mod stats;
mod table;

use project::{Kind, PROJECTS};

/// What `cargo xtask bench-projects` was asked.
#[derive(Debug, PartialEq)]
struct Options {
    rounds: usize,
    only: Option<Kind>,
    /// A built `sluice` to use instead of building the release one.
    sluice: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            rounds: 3,
            only: None,
            sluice: None,
        };
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = || {
                rest.next()
                    .with_context(|| format!("{arg} needs a value"))
                    .cloned()
            };
            match arg.as_str() {
                "--rounds" => {
                    let text = value()?;
                    options.rounds = text.parse().ok().filter(|n| *n > 0).with_context(|| {
                        format!("--rounds {text}: a number of rounds, 1 or more")
                    })?;
                }
                "--project" => options.only = Some(Kind::parse(&value()?)?),
                "--sluice" => options.sluice = Some(PathBuf::from(value()?)),
                other => bail!(
                    "unknown argument `{other}` (usage: cargo xtask bench-projects [--project \
                     rust|npm|python] [--rounds N] [--sluice BINARY])"
                ),
            }
        }
        Ok(options)
    }

    /// The command that reproduces one project's figures.
    fn command(&self, kind: Kind) -> String {
        format!(
            "cargo xtask bench-projects --project {} --rounds {}",
            kind.label(),
            self.rounds
        )
    }
}

pub fn bench(root: &Path, args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let sluice = match &options.sluice {
        Some(path) => std::path::absolute(path)?,
        None => crate::bench::release_sluice(root)?,
    };
    let real_home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
    let scratch = tempfile::Builder::new()
        .prefix("sluice-bench-projects-")
        .tempdir()
        .context("cannot make a scratch folder")?;
    let compiled = scratch.path().join("compiled");
    let downloads = scratch.path().join("downloads");
    std::fs::create_dir_all(&compiled)?;
    std::fs::create_dir_all(&downloads)?;
    println!("{}", table::header(root, &sluice, options.rounds));
    let mut failures = Vec::new();
    let chosen = PROJECTS
        .iter()
        .filter(|p| options.only.is_none_or(|only| only == p.kind));
    for project in chosen {
        let measured = fetch::fetch(project, &downloads).and_then(|pristine| {
            rounds::Rounds {
                sluice: &sluice,
                project,
                pristine: &pristine,
                work: scratch.path(),
                compiled: &compiled,
                real_home: &real_home,
            }
            .run(options.rounds)
        });
        match measured {
            Ok(figures) => println!(
                "{}",
                table::render(project, &figures, &options.command(project.kind))
            ),
            Err(err) => {
                eprintln!("xtask: {} {}: {err:#}", project.name, project.version);
                failures.push(format!("{} {}", project.name, project.version));
            }
        }
    }
    if !failures.is_empty() {
        bail!("the runs of {} failed (above)", failures.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_default_and_parsed() -> Result<()> {
        assert_eq!(
            Options::parse(&[])?,
            Options {
                rounds: 3,
                only: None,
                sluice: None
            }
        );
        let options = Options::parse(&args("--project npm --rounds 1 --sluice /x/sluice"))?;
        assert_eq!(options.rounds, 1);
        assert_eq!(options.only, Some(Kind::Npm));
        assert_eq!(options.sluice, Some(PathBuf::from("/x/sluice")));
        assert_eq!(
            options.command(Kind::Npm),
            "cargo xtask bench-projects --project npm --rounds 1"
        );
        for bad in ["--rounds 0", "--rounds", "--project go", "--fast"] {
            assert!(Options::parse(&args(bad)).is_err(), "{bad}");
        }
        Ok(())
    }
}
