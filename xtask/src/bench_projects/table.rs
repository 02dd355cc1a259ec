//! The project benchmark's output: a header naming the machine, the date, the commit and how
//! the two sides are set up, then one markdown table per project — each case's medians with
//! p10–p90, the ratio, the target and whether it was met, the stages the stage cache served or
//! ran, and the commands that reproduce it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::project::{self, Project};
use super::rounds::{Figures, Samples};
use super::stages;
use super::stats::{Spread, ratio};

/// Cold: sluice over by hand, at most.
const COLD_RATIO: f64 = 1.05;
/// One file touched: sluice over by hand, at most.
const TOUCHED_RATIO: f64 = 1.5;
/// Nothing changed: sluice's wall time, at most.
const UNCHANGED_MS: f64 = 1000.0;

/// The lines above the tables.
pub fn header(root: &Path, sluice: &Path, rounds: usize) -> String {
    let commit = first_line("git", &["rev-parse", "--short", "HEAD"], root);
    let dirty = !first_line("git", &["status", "--porcelain"], root).is_empty();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    // cargo and python3 name themselves; node and npm print a bare version.
    let tools = [
        ("", "cargo"),
        ("node ", "node"),
        ("npm ", "npm"),
        ("", "python3"),
    ]
    .map(|(label, program)| format!("{label}{}", first_line(program, &["--version"], root)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# sluice bench-projects — {}, commit {commit}{}\n",
        first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root),
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "machine: {cores} cores (nproc), {}; {}",
        first_line("uname", &["-sr"], root),
        tools.join(", ")
    );
    let _ = writeln!(
        out,
        "sluice: {} ({})",
        sluice.display(),
        first_line(&sluice.to_string_lossy(), &["--version"], root)
    );
    let _ = writeln!(
        out,
        "{rounds} alternating rounds (odd rounds by hand first), each from fresh copies of the \
         published sources; medians with p10–p90 in ms.\n\
         - sluice side: `sluice init` and `sluice check` untimed (the lock file init writes is \
         given to the by-hand copy), then `sluice run pipeline.toml` with a fresh HOME and \
         XDG_CACHE/STATE/DATA/CONFIG_HOME each round (empty stage cache, cache volumes and runs). \
         sluice's compiled-plugin cache (SLUICE_CACHE_DIR, SLUICE_CACHE_KEY) is kept warm across \
         rounds: cold means the project's caches, not sluice's own code cache.\n\
         - by-hand side: the same commands as the pipeline's stages, in sequence, in its own copy \
         with a fresh HOME too: cargo's target/ in the folder, npm_config_cache and PIP_CACHE_DIR \
         fresh.\n\
         - both: only PATH, HOME, the XDG folders and the stage's own variables in the \
         environment; HOME links this machine's ~/.cargo, ~/.rustup, ~/.pyenv and ~/.npmrc, so \
         the crates.io registry cache (CARGO_HOME) is shared and warm (`cargo fetch --locked` \
         before each round); npm's and pip's downloads are cold on both sides."
    );
    out
}

/// One project's table.
pub fn render(project: &Project, figures: &Figures, reproduce: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## {} {} ({})\n",
        project.name, project.version, project.registry
    );
    out.push_str(
        "| case | by hand ms | sluice ms | sluice / by hand | target | met | sluice's stages |\n\
         |---|---:|---:|---:|---|---|---|\n",
    );
    let cases: [(&str, &Samples, Target); 3] = [
        ("cold", &figures.cold, Target::Ratio(COLD_RATIO)),
        (
            "nothing changed (second run)",
            &figures.unchanged,
            Target::SluiceMs(UNCHANGED_MS),
        ),
        (
            &format!("one file touched ({})", project.touched),
            &figures.touched,
            Target::Ratio(TOUCHED_RATIO),
        ),
    ];
    for (case, samples, target) in cases {
        let (hand, sluice) = (Spread::of(&samples.hand_ms), Spread::of(&samples.sluice_ms));
        let ratio = ratio(sluice, hand);
        let met = match target {
            Target::Ratio(at_most) => ratio.map(|r| r <= at_most),
            Target::SluiceMs(at_most) => sluice.map(|s| s.median <= at_most),
        };
        let _ = writeln!(
            out,
            "| {case} | {} | {} | {} | {} | {} | {} |",
            shown(hand),
            shown(sluice),
            ratio.map_or_else(|| "—".to_string(), |r| format!("{r:.2}×")),
            target.shown(),
            match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            },
            stages::summary(&samples.stages)
        );
    }
    let cases = [
        ("nothing changed", &figures.unchanged),
        ("one file touched", &figures.touched),
    ];
    for (case, samples) in cases {
        let misses = samples
            .stages
            .first()
            .map(|run| stages::misses(run, 160))
            .unwrap_or_default();
        if !misses.is_empty() {
            let _ = writeln!(
                out,
                "\nwhy stages ran again, {case} (round 1, `cache.why`):"
            );
        }
        for miss in misses {
            let _ = writeln!(out, "- {miss}");
        }
    }
    let outside: Vec<String> = [
        ("cold", &figures.cold),
        ("nothing changed", &figures.unchanged),
        ("one file touched", &figures.touched),
    ]
    .iter()
    .filter_map(|(case, samples)| {
        let runs = samples.stages.iter().zip(&samples.sluice_ms);
        let ms: Vec<f64> = runs.map(|(run, ms)| stages::outside_ms(run, *ms)).collect();
        Spread::of(&ms).map(|spread| format!("{case} {}", shown(Some(spread))))
    })
    .collect();
    let _ = writeln!(
        out,
        "
sluice's time outside its stages (wall − the stages' `duration_ms`), ms: {}",
        outside.join(", ")
    );
    let steps = project::by_hand(project.kind, Path::new("<fresh>"));
    let by_hand: Vec<String> = steps.iter().map(project::Step::shown).collect();
    let _ = writeln!(out, "\nby hand: `{}`", by_hand.join(" && "));
    let _ = writeln!(
        out,
        "sluice:  `sluice init && sluice run pipeline.toml` (run again for nothing changed)"
    );
    let _ = writeln!(out, "reproduce: `{reproduce}`");
    out
}

/// What a case is held to.
#[derive(Clone, Copy)]
enum Target {
    /// sluice / by hand at most this.
    Ratio(f64),
    /// sluice's median at most this many ms.
    SluiceMs(f64),
}

impl Target {
    fn shown(self) -> String {
        match self {
            Self::Ratio(r) => format!("≤ {r:.2}×"),
            Self::SluiceMs(ms) => format!("sluice ≤ {ms:.0} ms"),
        }
    }
}

/// `median (p10–p90)`, or the one sample.
fn shown(spread: Option<Spread>) -> String {
    match spread {
        None => "—".to_string(),
        Some(s) if s.n == 1 => format!("{:.0}", s.median),
        Some(s) => format!("{:.0} ({:.0}–{:.0})", s.median, s.p10, s.p90),
    }
}

/// The first line `program args` prints (empty when it prints nothing), or `?` if it fails.
fn first_line(program: &str, args: &[&str], dir: &Path) -> String {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_else(|| "?".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_projects::project::PROJECTS;
    use crate::bench_projects::stages::StageOutcome;

    #[test]
    fn a_table_shows_ratios_targets_and_stages() {
        let stage = |name: &str, hit| StageOutcome {
            name: name.to_string(),
            hit,
            why: Vec::new(),
            duration_ms: 0.0,
        };
        let samples = |hand: &[f64], sluice: &[f64], hit| Samples {
            hand_ms: hand.to_vec(),
            sluice_ms: sluice.to_vec(),
            stages: vec![vec![stage("code", None), stage("build", Some(hit))]],
        };
        let figures = Figures {
            cold: samples(&[1000.0, 1200.0, 1100.0], &[1122.0, 1200.0, 1150.0], false),
            unchanged: samples(&[300.0], &[400.0], true),
            touched: samples(&[100.0], &[200.0], false),
        };
        let table = render(&PROJECTS[0], &figures, "cargo xtask bench-projects");
        assert!(table.contains("## semver 1.0.28 (crates.io)"), "{table}");
        assert!(
            table
                .contains("| cold | 1100 (1000–1200) | 1150 (1122–1200) | 1.05× | ≤ 1.05× | yes |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| 300 | 400 | 1.33× | sluice ≤ 1000 ms | yes | code ran (not cached), build hit |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| 100 | 200 | 2.00× | ≤ 1.50× | **no** | code ran (not cached), build miss, ran |"
            ),
            "{table}"
        );
        assert!(
            table.contains("cargo build --release --locked && "),
            "{table}"
        );
    }
}
