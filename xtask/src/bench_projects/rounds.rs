//! The alternating rounds of one project. Each round starts from two fresh copies of the unpacked
//! sources — one for sluice (`sluice init` + `sluice check`, untimed, its lock file given to the
//! other copy), one for the by-hand commands — and from empty homes on both sides; then times,
//! in alternating order: cold, nothing changed, one file touched.
//!
//! A home ([`Home`]) is a fresh HOME with fresh XDG folders inside it (sluice's stage cache,
//! cache volumes and runs; npm's and pip's caches), in which this machine's toolchains are linked
//! (`~/.cargo` with its crates.io registry cache — shared and warm on both sides — `~/.rustup`,
//! `~/.pyenv`, `~/.npmrc`). Every command runs with only PATH, HOME, the XDG variables and what
//! the stage gets besides: sluice's stages see no other variable, so neither does the by-hand
//! side. sluice's compiled-plugin cache and its key stay warm across rounds (`SLUICE_CACHE_DIR`,
//! `SLUICE_CACHE_KEY`): "cold" is about the project's caches, not sluice's own code.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::project::{self, Kind, Project, Step};
use super::stages::{self, StageOutcome};
use crate::measure::measure;

/// What the homes link to from the real one: toolchains and their configuration, no caches
/// (but cargo's registry, inside `~/.cargo`).
const LINKED: &[&str] = &[".cargo", ".rustup", ".pyenv", ".npmrc"];

/// The samples of one case, by side.
#[derive(Debug, Default)]
pub struct Samples {
    pub hand_ms: Vec<f64>,
    pub sluice_ms: Vec<f64>,
    /// What each sluice run did with its stages.
    pub stages: Vec<Vec<StageOutcome>>,
}

/// Every case of one project.
#[derive(Debug, Default)]
pub struct Figures {
    pub cold: Samples,
    pub unchanged: Samples,
    pub touched: Samples,
}

/// What the rounds of one project run with.
pub struct Rounds<'a> {
    pub sluice: &'a Path,
    pub project: &'a Project,
    /// The unpacked sources, never changed.
    pub pristine: &'a Path,
    /// Scratch space for the rounds' folders.
    pub work: &'a Path,
    /// sluice's compiled-plugin cache and its key, kept across rounds.
    pub compiled: &'a Path,
    pub real_home: &'a Path,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Hand,
    Sluice,
}

/// A fresh home: HOME and the XDG folders in it, the toolchains linked in.
struct Home(PathBuf);

impl Home {
    fn fresh(dir: PathBuf, real_home: &Path) -> Result<Self> {
        std::fs::create_dir_all(&dir)?;
        for name in LINKED {
            let real = real_home.join(name);
            if real.exists() {
                std::os::unix::fs::symlink(&real, dir.join(name)).with_context(|| {
                    format!("cannot link {} into {}", real.display(), dir.display())
                })?;
            }
        }
        Ok(Self(dir))
    }

    /// A command with only PATH, HOME and the XDG folders in its environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
        let mut command = Command::new(program);
        command.env_clear().current_dir(cwd).env("HOME", &self.0);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        for (name, sub) in [
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_STATE_HOME", ".local/state"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_CONFIG_HOME", ".config"),
        ] {
            command.env(name, self.0.join(sub));
        }
        command
    }
}

impl Rounds<'_> {
    /// Runs `rounds` rounds; a command that fails ends them with its output.
    pub fn run(&self, rounds: usize) -> Result<Figures> {
        let mut figures = Figures::default();
        for round in 1..=rounds {
            eprintln!(
                "xtask: {} {}: round {round} of {rounds}",
                self.project.name, self.project.version
            );
            self.round(round, &mut figures)?;
        }
        Ok(figures)
    }

    fn round(&self, round: usize, figures: &mut Figures) -> Result<()> {
        let dir = self
            .work
            .join(format!("{}-round{round}", self.project.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let (sluice_dir, hand_dir) = (dir.join("sluice"), dir.join("hand"));
        copy_dir(self.pristine, &sluice_dir)?;
        copy_dir(self.pristine, &hand_dir)?;
        let hand_caches = dir.join("hand-caches");
        let steps = project::by_hand(self.project.kind, &hand_caches);
        self.init(&dir, &sluice_dir, &hand_dir, &steps)?;
        let sluice_home = Home::fresh(dir.join("sluice-home"), self.real_home)?;
        let hand_home = Home::fresh(dir.join("hand-home"), self.real_home)?;
        if self.project.kind == Kind::Rust {
            // The shared registry cache holds every crate of the lock before either side runs.
            checked(
                hand_home
                    .command("cargo", &hand_dir)
                    .args(["fetch", "--locked"]),
            )?;
        }
        let order = if round % 2 == 1 {
            [Side::Hand, Side::Sluice]
        } else {
            [Side::Sluice, Side::Hand]
        };
        let hand_out = dir.join("hand-out");
        let by_hand = || self.by_hand(&hand_home, &hand_dir, &hand_out, &steps);
        let sluice = |case: &str| self.sluice_run(&sluice_home, &sluice_dir, &dir, case);
        let cases = [
            ("cold", &mut figures.cold),
            ("unchanged", &mut figures.unchanged),
            ("touched", &mut figures.touched),
        ];
        for (case, samples) in cases {
            if case == "touched" {
                for folder in [&sluice_dir, &hand_dir] {
                    append(&folder.join(self.project.touched), round)?;
                }
            }
            for side in order {
                let (who, ms) = match side {
                    Side::Hand => ("by hand", by_hand()?),
                    Side::Sluice => {
                        let (ms, outcomes) = sluice(case)?;
                        samples.stages.push(outcomes);
                        ("sluice", ms)
                    }
                };
                eprintln!("xtask: {case}, {who}: {ms:.0} ms");
                match side {
                    Side::Hand => samples.hand_ms.push(ms),
                    Side::Sluice => samples.sluice_ms.push(ms),
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    /// `sluice init` and `sluice check` in the sluice copy (a home of their own; the check
    /// compiles the stages into the kept compiled cache), then its lock file into the by-hand
    /// copy.
    fn init(&self, dir: &Path, sluice_dir: &Path, hand_dir: &Path, steps: &[Step]) -> Result<()> {
        let home = Home::fresh(dir.join("init-home"), self.real_home)?;
        checked(self.sluice_command(&home, sluice_dir).arg("init"))?;
        checked(
            self.sluice_command(&home, sluice_dir)
                .args(["check", "pipeline.toml"]),
        )?;
        let pipeline = std::fs::read_to_string(sluice_dir.join("pipeline.toml"))
            .context("`sluice init` wrote no pipeline.toml")?;
        project::check_pipeline(&pipeline, steps)?;
        if let Some(name) = self.project.lock {
            let lock = sluice_dir.join(name);
            if lock.is_file() {
                std::fs::copy(&lock, hand_dir.join(name))
                    .with_context(|| format!("cannot copy {}", lock.display()))?;
            }
        }
        Ok(())
    }

    /// `sluice` in `folder` with `home`, its compiled-plugin cache the kept one.
    fn sluice_command(&self, home: &Home, folder: &Path) -> Command {
        let mut command = home.command(self.sluice, folder);
        command
            .env("SLUICE_CACHE_DIR", self.compiled.join("cache"))
            .env("SLUICE_CACHE_KEY", self.compiled.join("cache.key"));
        command
    }

    /// The by-hand commands in order, each step's outputs (`${out}`) in a fresh folder as a
    /// stage's are; their wall time together.
    fn by_hand(&self, home: &Home, folder: &Path, out: &Path, steps: &[Step]) -> Result<f64> {
        let mut total = 0.0;
        for step in steps {
            let _ = std::fs::remove_dir_all(out);
            std::fs::create_dir_all(out)?;
            let mut command = home.command(step.program_in(folder), folder);
            command
                .args(step.args_with(out))
                .envs(step.env.iter().map(|(k, v)| (k, v)));
            total += measure(&mut command)?.wall_ms;
        }
        Ok(total)
    }

    /// `sluice run pipeline.toml` in `folder`; its wall time and what it did with each stage.
    fn sluice_run(
        &self,
        home: &Home,
        folder: &Path,
        dir: &Path,
        case: &str,
    ) -> Result<(f64, Vec<StageOutcome>)> {
        let report = dir.join(format!("report-{case}.json"));
        let mut command = self.sluice_command(home, folder);
        command
            .args(["run", "pipeline.toml", "--format", "plain", "--quiet"])
            .arg("--report")
            .arg(&report);
        let sample = measure(&mut command)?;
        let text = std::fs::read_to_string(&report)
            .with_context(|| format!("`sluice run` wrote no report {}", report.display()))?;
        let outcomes = stages::read(&text).with_context(|| format!("in {}", report.display()))?;
        Ok((sample.wall_ms, outcomes))
    }
}

/// Appends round `round`'s comment line to `file`.
fn append(file: &Path, round: usize) -> Result<()> {
    use std::io::Write;
    let name = file.to_string_lossy();
    std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(project::touch_line(&name, round).as_bytes()))
        .with_context(|| format!("cannot append to {}", file.display()))
}

/// `cp -a from to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    checked(Command::new("cp").arg("-a").arg(from).arg(to))
}

/// Runs `command` untimed; fails with what it wrote.
fn checked(command: &mut Command) -> Result<()> {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cwd = command
        .get_current_dir()
        .map_or_else(String::new, |d| format!("cd {} && ", d.display()));
    eprintln!(
        "xtask: $ {cwd}{} {}",
        command.get_program().to_string_lossy(),
        args.join(" ")
    );
    measure(command).map(drop)
}
